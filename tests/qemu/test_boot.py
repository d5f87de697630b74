"""The real initramfs as PID 1 under QEMU: DHCP, switch_root, daemon, fallbacks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, Vm
from tests.qemu.conftest import BOOT_TIMEOUT, built_release
from tests.qemu.conftest import boot_spec as _spec


def _dhcpacks(gw: Gateway) -> list[str]:
    text = gw.dnsmasq_log.read_text() if gw.dnsmasq_log.exists() else ""
    return [line for line in text.splitlines() if "DHCPACK" in line and GUEST_MAC in line]


def test_dhcp_boot_switches_root_and_daemon_renews(
    kernel_images: dict[str, Path], gateway: Gateway, tmp_path: Path
) -> None:
    spec = _spec(
        kernel_images, "root=/dev/vda rw mostest.wait=30", net="tap:tap0", netns=gateway.name
    )
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
        vm.wait_exit(30)
        console = vm.text()
    net = gateway.net
    assert f"Linux version {built_release(kernel_images)} " in console
    assert "mosnet: mosnet-init starting as pid 1" in console
    # The real init, not mosnet, is PID 1 afterwards, with the same PID.
    assert "ROOT: real init running as pid 1" in console
    assert "ROOT: /proc/1/exe -> /bin/busybox" in console
    # DHCP mode: the NIC is the uplink of br-mosnet, the lease lives on "mos".
    addr = re.search(rf"ROOT:\s+inet ({re.escape(net)}\.\d+)/24 .* mos", console)
    assert addr, "leased address missing in the real root"
    assert re.search(r"ROOT:\s+\d+: eth0: .* master br-mosnet", console)
    assert re.search(rf"ROOT:\s+default via {re.escape(gateway.address)} dev mos", console)
    assert f"ROOT:   nameserver {gateway.address}" in console
    assert "ROOT:   search mosnet.test" in console
    assert re.search(r"ROOT:\s+daemon pid \d+ cmdline '@mosnet-daemon", console)
    assert "ROOT:   lease-mos.json" in console and "ROOT:   boot.log" in console
    _check_state_json(console, addr.group(1), gateway.address)
    # Each boot phase is logged with its time.
    for phase in ("drivers", "network", "root", "daemon"):
        assert re.search(rf"mosnet: {phase} done in \d+ ms", console), phase
    # The daemon kept the lease after switch_root: dnsmasq acknowledged a renewal.
    acks = _dhcpacks(gateway)
    assert len(acks) >= 2, f"expected a renewal ACK, dnsmasq log has {acks}"
    assert all(addr.group(1) in a for a in acks)
    assert "daemon now runs in the real root" in console
    # ext4 is a module: the kernel loaded it through the module helper at mount.
    modules = re.search(r"ROOT: --- modules\s+ROOT:\s+(.*)", console)
    assert modules and "ext4" in modules.group(1).split(), "ext4 not loaded by request_module"
    assert "Kernel panic" not in console


def _check_state_json(console: str, address: str, gateway: str) -> None:
    """PID 1's hand-off, read in the real root: what was chosen, why, and who runs."""
    line = re.search(r"^ROOT: state\.json (\{.*\})\s*$", console, re.M)
    assert line, "no /run/mosnet/state.json in the real root"
    st = json.loads(line.group(1))
    net = st["network"]
    assert (st["schema"], st["boot"]["result"]) == (1, "switch_root")
    assert (net["mode"], net["nic"], net["port"], net["backend"]) == (
        "dhcp",
        "eth0",
        "mos",
        "linux",
    )
    assert net["nic_reason"].startswith(f"offer {address} from {gateway}")
    assert {"ifname": "mos", "address": f"{address}/24", "scope": "global"} in net["addresses"]
    assert {"dst": "default", "dev": "mos", "via": gateway} in net["routes"]
    assert net["dns"]["servers"] == [gateway]
    daemon = re.search(r"ROOT:\s+daemon pid (\d+) cmdline '@mosnet-daemon", console)
    assert daemon and st["daemon"]["pid"] == int(daemon.group(1))  # the daemon rewrote it
    lease = st["lease"]
    assert lease["address"] == f"{address}/24" and lease["server"] == gateway
    assert lease["obtained"] < lease["renew_at"] < lease["rebind_at"] < lease["expires_at"]
    assert set(st["boot"]["timings_ms"]) >= {"setup", "drivers", "network", "root"}


def _expect_fallback(vm: Vm, timeout: float) -> str:
    vm.wait_for(r"reboot: System halted|starting the emergency shell", timeout)
    return vm.text()


def test_missing_root_device_halts_after_bounded_retries(
    images: dict[str, Path], tmp_path: Path
) -> None:
    spec = _spec(images, "root=/dev/vdz mosroot_timeout=2", net="none")
    with Vm(spec, tmp_path / "console.log") as vm:
        console = _expect_fallback(vm, BOOT_TIMEOUT)
    assert "boot attempt 1/3 failed" in console
    assert "boot attempt 2/3 failed" in console
    assert "FATAL: RootNotFound" in console
    assert "/dev/vda" in console  # the error lists the devices that do exist
    assert "reboot: System halted" in console
    assert "Kernel panic" not in console


def test_bad_init_is_refused_before_anything_is_deleted(
    images: dict[str, Path], tmp_path: Path
) -> None:
    """A refused init= is reported, then the default list boots (/sbin/init here)."""
    spec = _spec(images, "root=/dev/vda init=/sbin/nonexistent", rdinit=False, net="none")
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
        console = vm.text()
    assert "Run /init as init process" in console
    assert "mosnet: mosnet-init starting as pid 1" in console
    refusal = console.index("switch_root: init= refused: '/sbin/nonexistent'")
    assert refusal < console.index("switch_root: removed")  # refused before the wipe
    assert "ROOT: real init running as pid 1" in console
    assert "FATAL" not in console
    assert "Kernel panic" not in console


def test_ip_off_boots_without_touching_the_network(images: dict[str, Path], tmp_path: Path) -> None:
    """ip=off: no bridge, no DHCP, no daemon; the NIC is left down and the root boots."""
    spec = _spec(images, "root=/dev/vda ip=off mosfirewall=ssh", net="user")
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
        console = vm.text()
    assert "ip=off or rd.neednet=0: no network" in console
    assert "ROOT: real init running as pid 1" in console
    assert "br-mosnet" not in console.split("ROOT: --- addresses")[1]
    assert "dhcp4" not in console and "ROOT:   daemon pid" not in console
    assert '"mode": "off"' in console  # state.json
    assert "table inet mosnet-firewall" in console  # the firewall still protects the host
    assert "FATAL" not in console and "Kernel panic" not in console


def test_mosshell_gives_a_working_emergency_shell(images: dict[str, Path], tmp_path: Path) -> None:
    spec = _spec(images, "root=/dev/vdz mosroot_timeout=1 mosshell", net="none")
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"starting the emergency shell", BOOT_TIMEOUT)
        vm.wait_for(r"# $|# \S*$|/ #", 60)
        vm.send("echo SHELL-$((6*7)); exit\n")
        vm.wait_for(r"SHELL-42", 60)
        # exit must not kill PID 1: the shell is respawned.
        vm.wait_for(r"emergency shell exited; respawning", 60)
        console = vm.text()
    assert "Kernel panic" not in console


def test_static_boot_puts_the_address_on_public_behind_br_mosnet(
    kernel_images: dict[str, Path], tmp_path: Path
) -> None:
    """mosip4 with a tap-side gateway: no DHCP server, the probe finds the NIC."""
    gw = Gateway(name=f"mosqs-{os.getpid()}", workdir=tmp_path / "gw")
    gw.start(dhcp=False)
    try:
        addr = f"{gw.net}.50"
        append = (
            f"root=/dev/vda rw mosip4={addr},{gw.address},255.255.255.0 "
            f"nameserver={gw.address} mostest.ping={gw.address} mostest.wait=8"
        )
        spec = _spec(kernel_images, append, net="tap:tap0", netns=gw.name)
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: waiting", BOOT_TIMEOUT)
            # The provider reaches the real root too, while it runs.
            from_gateway = gw.run("/bin/busybox", "ping", "-c", "2", "-W", "3", addr)
            vm.wait_for(r"^ROOT: done", 60)
            console = vm.text()
    finally:
        gw.stop()
    assert f"Linux version {built_release(kernel_images)} " in console
    assert "network mode: static" in console
    assert f"gateway {gw.address} answers on eth0" in console
    assert re.search(rf"ROOT:\s+inet {re.escape(addr)}/24 .* public", console)
    assert re.search(r"ROOT:\s+\d+: eth0: .* master br-mosnet", console)
    assert re.search(rf"ROOT:\s+default via {re.escape(gw.address)} dev public", console)
    assert f"ROOT: ping {gw.address} ok" in console
    assert f"ROOT:   nameserver {gw.address}" in console
    assert from_gateway.returncode == 0, from_gateway.stdout + from_gateway.stderr
    assert "Kernel panic" not in console
