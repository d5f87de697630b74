"""Chain mode in QEMU: mosnet appended to Debian 12's own initramfs-tools initrd.

``cat initrd.img out/mosnet-append.img`` boots with ``rdinit=/mosnet-init
mosinit=chain root=LABEL=debroot``: mosnet brings up DHCP and its daemon,
execs initramfs-tools' /init, which mounts the root and runs systemd. The
checks run in the real root through qemu/debroot.sh's test hook.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, OUT, TOP, Vm, VmSpec

BOOT_TIMEOUT = 600  # TCG: mosnet, then initramfs-tools, udev and systemd (slow on a busy host)
DEBROOT = OUT / "debroot"

# Runs in the real root after multi-user.target; every line reaches the
# console as "DEBROOT: ...".
CHECKS = r"""
echo "pid1 $(tr '\0' ' ' < /proc/1/cmdline)"
ip -4 -o addr show dev mos
ip -4 route show default
s=$(tr -d '\n' < /run/mosnet/state.json)
for key in result init mode port followed; do
    echo "state $(printf '%s\n' "$s" | grep -o "\"$key\": *[^,}]*" | head -n 1)"
done
echo "state $(printf '%s\n' "$s" | grep -o '"daemon": *{ *"pid": *[0-9]*')"
echo "initramfs-tools left $(ls -d /run/initramfs 2>&1)"
findmnt -n -o TARGET,FSTYPE /run/mosnet
d=$(pgrep -o -f '^@mosnet-daemon')
echo "daemon $d root $(stat -L -c %d:%i /proc/$d/root) mnt $(readlink /proc/$d/ns/mnt)"
echo "pid1 root $(stat -L -c %d:%i /proc/1/root) mnt $(readlink /proc/1/ns/mnt)"
echo "resolv $(grep nameserver /etc/resolv.conf | tr '\n' ' ')"
echo "coexist $(ls /run/systemd/network/ /run/NetworkManager/conf.d/ 2>&1 | tr '\n' ' ')"
"""


@pytest.fixture(scope="session")
def debroot() -> dict[str, Path]:
    """Debian 12 root, its initramfs-tools initrd and kernel (qemu/debroot.sh, cached)."""
    script = TOP / "qemu" / "debroot.sh"
    if not script.exists():
        pytest.fail("qemu/debroot.sh missing (it comes with the systemd-coexistence branch)")
    subprocess.run([str(script), str(DEBROOT)], check=True, stdout=subprocess.DEVNULL)
    append = OUT / "mosnet-append.img"
    if not append.exists():
        pytest.fail(f"{append} missing: run ./build.sh --append first")
    files = {"root": "root.img", "initrd": "initrd.img", "kernel": "vmlinuz"}
    return {**{name: DEBROOT / f for name, f in files.items()}, "append": append}


def _debroot_lines(console: str) -> list[str]:
    """The hook's lines; systemd's status redraws may put escapes in front."""
    found = re.finditer(r"DEBROOT: (.*?)\r?$", console, re.M)
    return [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", m.group(1)).rstrip() for m in found]


def test_chain_mode_with_initramfs_tools(
    debroot: dict[str, Path], gateway: Gateway, tmp_path: Path
) -> None:
    combined = tmp_path / "combined.img"
    combined.write_bytes(debroot["initrd"].read_bytes() + debroot["append"].read_bytes())
    checks = tmp_path / "checks.sh"
    checks.write_text(CHECKS)
    spec = VmSpec(
        kernel=debroot["kernel"], initrd=combined, disk=debroot["root"], memory_mb=1024,
        append="rdinit=/mosnet-init mosinit=chain root=LABEL=debroot",
        net="tap:tap0", netns=gateway.name,
        extra=("-fw_cfg", f"name=opt/debroot/test,file={checks}"),
    )  # fmt: skip
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^DEBROOT: test rc=", BOOT_TIMEOUT)
        vm.wait_exit(60)
        console = vm.text()
    lines = _debroot_lines(console)
    text = "\n".join(lines)
    net, gw = gateway.net, gateway.address
    # mosnet ran first, then handed PID 1 over to initramfs-tools' /init.
    assert "mosnet: mosnet-init starting as pid 1" in console
    assert "chain: exec /init" in console
    assert "Begin: Mounting root file system" in console, "initramfs-tools' init did not run"
    assert "initramfs-tools left /run/initramfs" in text
    assert re.search(r"^pid1 /sbin/init|^pid1 /lib/systemd/systemd", text, re.M), text
    # The lease sits on mos in the real root, with the default route.
    addr = re.search(rf"^\d+: mos\s+inet ({re.escape(net)}\.\d+)/24", text, re.M)
    assert addr, text
    assert re.search(rf"^default via {re.escape(gw)} dev mos", text, re.M), text
    # state.json survived initramfs-tools' fresh /run: bound in by the daemon.
    for field in ('"result": "chain"', '"init": "/init"', '"mode": "dhcp"', '"port": "mos"',
                  '"followed": true'):  # fmt: skip
        assert f"state {field}" in lines, (field, text)
    assert re.search(r"^/run/mosnet\s+tmpfs", text, re.M), text
    # The daemon runs in the real root, in PID 1's mount namespace.
    daemon = re.search(r"^daemon (\d+) root (\S+) mnt (\S+)$", text, re.M)
    pid1 = re.search(r"^pid1 root (\S+) mnt (\S+)$", text, re.M)
    assert daemon and pid1, text
    assert re.search(rf'^state "daemon": *{{ *"pid": *{daemon.group(1)}$', text, re.M), text
    assert (daemon.group(2), daemon.group(3)) == (pid1.group(1), pid1.group(2))
    assert f"resolv nameserver {gw}" in text
    # the daemon wrote the network managers' files into the real root's /run
    coexist = re.search(r"^coexist (.*)$", text, re.M)
    assert (
        coexist and "00-mosnet.network" in coexist.group(1) and "00-mosnet.conf" in coexist.group(1)
    ), text
    # It keeps the lease from there: dnsmasq saw a renewal (T1 = 12 s).
    log = gateway.dnsmasq_log.read_text()
    acks = [ln for ln in log.splitlines() if "DHCPACK" in ln and GUEST_MAC in ln]
    assert len(acks) >= 2, acks
    assert "Kernel panic" not in console
