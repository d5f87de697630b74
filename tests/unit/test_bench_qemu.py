"""The pure parts of bench/qemu/console.py and bench/common/dracut_ref.py: console, phases."""

from __future__ import annotations

import pytest

from bench.common import busybox_ref, dracut_ref
from bench.qemu import console

CONSOLE = """\
SeaBIOS (version 1.16.2-debian-1.16.2-1)
[    0.000000] Linux version 6.1.0-56-amd64
[    2.269899] Trying to unpack rootfs image as initramfs...
[    5.374699] Freeing initrd memory: 19344K
[    7.193908] Run /init as init process
[   17.982637] mosnet: mosnet-init starting as pid 1 (uptime 18.030 s)
[   23.089897] mosnet: drivers done in 5066 ms
[   31.492991] mosnet: boot timings: setup 163 ms, drivers 5066 ms, network 7215 ms, \
firewall 7 ms, root 816 ms, daemon 75 ms
[   31.842526] mosnet: switch_root: exec /sbin/init (/sbin/init) []
[   31.873199] Not activating Mandatory Access Control as /sbin/tomoyo-init does not exist.
ROOT: real init running as pid 1
ROOT: --- addresses
ROOT:       inet 127.0.0.1/8 scope host lo
ROOT:       inet 10.231.7.111/24 brd 10.231.7.255 scope global dynamic mos
ROOT: --- routes
"""


def test_console_lines_split_kernel_stamps() -> None:
    lines = console.console_lines("[    7.193908] Run /init as init process\r\nROOT: x\n")
    assert lines[0] == (7.193908, "Run /init as init process")
    assert lines[1] == (None, "ROOT: x")
    assert console.stamp_of(lines, console.RUN_INIT) == 7.193908
    # a marker echoed without a kernel stamp does not count
    fake = console.console_lines("Not activating Mandatory Access Control as x does not exist")
    assert console.stamp_of(fake, console.REAL_INIT) is None


def test_boot_timings_line() -> None:
    got = console.parse_boot_timings("setup 163 ms, drivers 5066 ms, ipv6 ra 3004.5 ms")
    assert got == {"setup": 163.0, "drivers": 5066.0, "ipv6 ra": 3004.5}
    assert console.parse_boot_timings("nothing here") == {}


def test_analyse_a_mosnet_boot() -> None:
    r = console.analyse(CONSOLE, mosnet=True)
    assert r.ok, r.error
    assert r.real_init_s == pytest.approx(31.873199)
    assert r.run_init_s == pytest.approx(7.193908)
    assert r.unpack_s == pytest.approx(5.374699 - 2.269899)
    p = r.phases_ms
    assert p["python"] == pytest.approx((17.982637 - 7.193908) * 1000)
    assert (p["drivers"], p["network"], p["daemon"]) == (5066.0, 7215.0, 75.0)
    assert p["switch_root"] == pytest.approx((31.873199 - 31.492991) * 1000)
    # the phases add up to Run /init -> real init
    assert sum(p.values()) == pytest.approx((31.873199 - 7.193908) * 1000)


def test_analyse_refuses_runs_without_marker_or_lease() -> None:
    no_marker = CONSOLE.replace("Not activating", "Activating")
    r = console.analyse(no_marker, mosnet=True)
    assert not r.ok and "real init not reached" in r.error
    no_lease = CONSOLE.replace("inet 10.231.7.111", "inet 192.168.1.5")
    r = console.analyse(no_lease, mosnet=False)
    assert not r.ok and "lease" in r.error
    # the address must be in the test root's report, not anywhere on the console
    elsewhere = no_lease + "[ 40.0] mosnet: bound 10.231.7.111/24\n"
    assert not console.analyse(elsewhere, mosnet=False).ok
    assert console.analyse(CONSOLE, mosnet=False).phases_ms == {}


def test_summary_and_ratios() -> None:
    ok = [console.RunResult(True, 10.0 + i, 6.0, 0.5) for i in range(5)]
    bad = console.RunResult(False, error="real init not reached")
    s = console.summarize_variant([*ok, bad])
    assert (s["runs"], s["failures"]) == (6, 1)
    assert s["real_init_s"]["median"] == 12.0
    assert s["initramfs_s"]["median"] == 6.0
    assert s["errors"] == ["real init not reached"]
    variants = {
        "busybox": {"real_init_s": {"median": 10.0}},
        "mosnet": {"real_init_s": {"median": 31.0}},
        "dracut": {},
    }
    assert console.ratios(variants, "real_init_s") == {"mosnet": 3.1}
    assert console.ratios({"mosnet": variants["mosnet"]}, "real_init_s") == {}
    assert console.summarize_variant([bad]).get("real_init_s") is None


def test_reference_script_loads_modules_in_order_then_waits_for_root() -> None:
    text = busybox_ref.busybox_init("/dev/vda", modules=("virtio", "virtio_net"), rw=True,
                                    fstype="ext4")  # fmt: skip
    lines = text.splitlines()
    i_virtio = lines.index("insmod /lib/modules/virtio.ko")
    assert lines[i_virtio + 1] == "insmod /lib/modules/virtio_net.ko"
    assert i_virtio < lines.index("ip link set eth0 up")
    wait = next(i for i, ln in enumerate(lines) if "[ ! -b /dev/vda ]" in ln)
    assert wait < lines.index("mount -o rw -t ext4 /dev/vda /sysroot")
    assert lines[-1] == "exec switch_root /sysroot /sbin/init"
    # the native bench's script is unchanged: no modules, no wait, read-only
    native = busybox_ref.busybox_init("/dev/loop7")
    assert "insmod" not in native and "usleep" not in native
    assert "mount -o ro /dev/loop7 /sysroot" in native.splitlines()
    assert set(busybox_ref.busybox_applets(True)) - set(busybox_ref.busybox_applets()) == {
        "insmod",
        "usleep",
    }


def test_dracut_command_line() -> None:
    generic = dracut_ref.dracut_argv("generic", "6.1.0-56-amd64", "/bq7out/x.img")
    assert generic[0] == "/usr/bin/dracut" and generic[-1] == "/bq7out/x.img"
    assert "--no-hostonly" in generic and "--drivers" not in generic
    mods = generic[generic.index("--modules") + 1].split()
    assert "network-legacy" in mods and "systemd" not in mods
    assert generic[generic.index("--compress") + 1].startswith("zstd --ultra -")
    drivers = dracut_ref.dracut_argv("drivers", "6.1.0-56-amd64", "/o")
    assert "virtio_net" in drivers[drivers.index("--drivers") + 1].split()
    with pytest.raises(ValueError):
        dracut_ref.dracut_argv("hostonly", "6.1", "/o")


def test_parse_maps_reads_only_marked_lines() -> None:
    text = (
        "/ # for p in /proc/[0-9]*; do ... BQ7-MAP \\1 ...\n"
        "BQ7-MAP /usr/lib/mosnet/_socket.so\n"
        "BQ7-MAP /usr/lib/mosnet/mosnet-init.bin\r\n"
        "BQ7-MAP /usr/lib/mosnet/_socket.so\n"
        "BQ7-MAP\n"
        "BQ7-END\n"
    )
    assert console.parse_maps(text) == [
        "/usr/lib/mosnet/_socket.so",
        "/usr/lib/mosnet/mosnet-init.bin",
    ]
