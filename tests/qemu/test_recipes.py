"""docs/boot-recipes.md, booted: every recipe block is cut from the doc and run.

iPXE and PXELINUX boot through QEMU's iPXE ROM from dnsmasq (DHCP, TFTP)
and a Python HTTP server in the provider namespace; GRUB is Debian's,
installed on a disk image that holds the test root; the QEMU line runs as
written; the Hetzner line boots behind the MAC-filtering provider of
test_boot_hetzner.py. Only the doc's placeholders are replaced (BOOT_SERVER,
/srv, and for Hetzner the documentation addresses by the test network's).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from qemu import grubdisk, recipes
from qemu.topology import Gateway
from qemu.vm import TOP, Vm, VmSpec
from tests.qemu import provider
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec, http_get
from tests.qemu.test_boot_hetzner import NET6, _gateway

BOOTIF = "BOOTIF=01-52-54-00-12-34-56"


def _sh(script: str) -> None:
    subprocess.run(["bash", "-euxc", script], cwd=TOP, check=True, stdin=subprocess.DEVNULL)


def _netboot(
    images: dict[str, Path], tmp_path: Path, name: str, dnsmasq: str, stage: str
) -> tuple[str, str]:
    """Stage the doc's files, start dnsmasq with the doc's lines, PXE-boot; console and HTTP log."""
    srv = tmp_path / "srv"
    gw = Gateway(name=f"mosqr-{os.getpid()}-{name}", workdir=tmp_path / "gw")
    _sh(recipes.block("http-files", gw.address, srv))
    _sh(stage.replace("BOOT_SERVER", gw.address).replace("/srv/", f"{srv}/"))
    gw.dnsmasq_args = tuple(recipes.dnsmasq_args(recipes.block(dnsmasq, gw.address, srv)))
    gw.start()
    try:
        gw.serve_http(srv / "http")
        spec = VmSpec(disk=images["root"], net="tap:tap0", netns=gw.name, firmware="n")
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
            console = vm.text()
    finally:
        gw.stop()
    _check_dhcp_boot(console, gw)
    return console, gw.http_log.read_text()


def _check_dhcp_boot(console: str, gw: Gateway) -> None:
    assert "mosnet: mosnet-init starting as pid 1" in console
    assert "ROOT: real init running as pid 1" in console
    assert re.search(rf"ROOT:\s+inet {re.escape(gw.net)}\.\d+/24 .* mos", console), "no lease"
    assert re.search(rf"ROOT:\s+default via {re.escape(gw.address)} dev mos", console)
    assert "bad value" not in console and "Kernel panic" not in console


def _fetched(http_log: str, *paths: str) -> None:
    for path in paths:
        assert re.search(rf'"GET {re.escape(path)} HTTP/1\.[01]" 200', http_log), (path, http_log)


def test_ipxe_script_from_dhcp_over_http(images: dict[str, Path], tmp_path: Path) -> None:
    stage = f"cat > /srv/http/mosnet/boot.ipxe <<'EOF'\n{recipes.blocks()['ipxe-script']}EOF\n"
    console, http = _netboot(images, tmp_path, "ipxe", "ipxe-dnsmasq", stage)
    _fetched(http, "/mosnet/boot.ipxe", "/mosnet/vmlinuz", "/mosnet/mosnet-initramfs.img")
    assert re.search(r"Kernel command line: .*initrd=mosnet-initramfs\.img " + BOOTIF, console)


def test_pxelinux_over_tftp_then_http(images: dict[str, Path], tmp_path: Path) -> None:
    cfg = recipes.blocks()["pxelinux-cfg"]
    stage = (
        recipes.blocks()["pxelinux-files"]
        + f"cat > /srv/tftp/pxelinux.cfg/default <<'EOF'\n{cfg}EOF\n"
    )
    console, http = _netboot(images, tmp_path, "pxe", "pxelinux-dnsmasq", stage)
    _fetched(http, "/mosnet/vmlinuz", "/mosnet/mosnet-initramfs.img")
    assert re.search(r"Kernel command line: .*root=LABEL=mosroot .* " + BOOTIF, console)


def test_grub_entry_on_a_local_disk(images: dict[str, Path], tmp_path: Path) -> None:
    """The test root plus /boot, one ext4 partition labelled mosroot, GRUB in the MBR."""
    stage = grubdisk.ext4_contents(images["root"], tmp_path / "stage")
    (stage / "boot" / "grub").mkdir(parents=True)
    _sh(recipes.blocks()["grub-files"].replace(" /boot/", f" {stage}/boot/"))
    preamble = (
        "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n"
        "set timeout=0\nset default=mosnet\n"
    )
    (stage / "boot/grub/grub.cfg").write_text(preamble + recipes.blocks()["grub-entry"])
    disk = grubdisk.make(tmp_path / "disk.img", stage, "mosroot")
    spec = VmSpec(disk=disk, net="user", firmware="c")
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
        console = vm.text()
    assert "GRUB" in console
    cmdline = r"Kernel command line: BOOT_IMAGE=/boot/vmlinuz-mosnet root=LABEL=mosroot"
    assert re.search(cmdline, console)
    assert re.search(r"ROOT:\s+inet 10\.0\.2\.15/24 .* mos", console)
    assert "ROOT: real init running as pid 1" in console and "Kernel panic" not in console


def test_qemu_line_as_written(images: dict[str, Path], tmp_path: Path) -> None:
    argv = recipes.shell_words(recipes.blocks()["qemu"])
    assert "-accel" in argv and argv[argv.index("-accel") + 1] == "tcg"
    with Vm(VmSpec(), tmp_path / "console.log", argv=argv) as vm:
        vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
        assert vm.wait_exit(60) == 0  # the root powers off; -no-reboot ends QEMU
        console = vm.text()
    assert "mosnet: mosnet-init starting as pid 1" in console
    assert re.search(r"ROOT:\s+inet 10\.0\.2\.15/24 .* mos", console)
    assert re.search(r"ROOT:\s+default via 10\.0\.2\.2 dev mos", console)
    assert "Kernel panic" not in console


# The doc's documentation addresses, mapped onto the test provider network.
HETZNER_MAP = {
    "203.0.113.10": "10.213.7.52",
    "203.0.113.1": "10.213.7.1",
    "2001:db8:1234:5678::": f"{NET6}::",
    "185.12.64.1": "10.213.7.1",
    "185.12.64.2": "10.213.7.2",
}


def hetzner(text: str) -> str:
    """A Hetzner block with the test network's addresses."""
    for doc, test in HETZNER_MAP.items():
        text = text.replace(doc, test)
    return text.strip()


def hetzner_gateway(tmp_path: Path) -> Gateway:
    """test_boot_hetzner's MAC-filtering provider, plus Hetzner's fe80::1 gateway."""
    gw = _gateway(tmp_path, "static")
    gw.run("ip", "addr", "add", "fe80::1/64", "dev", "br0", "nodad")
    return gw


def test_hetzner_worked_example(images: dict[str, Path], tmp_path: Path) -> None:
    gw = hetzner_gateway(tmp_path)
    host4, host6 = "10.213.7.52", f"{NET6}::2"
    ct4, ct6 = f"{gw.net}.60", f"{NET6}::60"
    test = f"mostest.container={ct4}/24,{gw.address},{ct6}/64,{NET6}::1 mostest.handshake"
    line = f"{hetzner(recipes.blocks()['hetzner-cmdline'])} mostest.listen=22,8080 {test}"
    spec = boot_spec(images, line, rdinit=False, net="tap:tap0", netns=gw.name)
    try:
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: host turn: MAC NAT on", BOOT_TIMEOUT)
            pings = {a: provider.ping(gw, a) for a in (host4, host6, ct4, ct6)}
            ssh, other = http_get(gw, host4, 22), http_get(gw, host4, 8080)
            drops, console = provider.drops(gw), vm.text()
    finally:
        gw.stop()
    assert "network mode: static" in console
    assert f"gateway {gw.address} answers on eth0" in console
    assert re.search(rf"ROOT:\s+inet {host4}/32 .* public", console)
    assert re.search(rf"ROOT:\s+inet6 {host6}/64 .* global", console)
    assert re.search(rf"ROOT:\s+default via {gw.address} dev public onlink", console)
    assert re.search(r"ROOT:\s+default via fe80::1 dev public", console)
    assert f"ROOT:   nameserver {gw.address}" in console
    assert all(pings.values()), pings
    for target in (gw.address, f"{NET6}::1"):
        assert f"ROOT: container ping {target} (MAC NAT) ok" in console, target
    assert drops == {"foreign source MAC": 0, "unicast to a foreign MAC": 0}, drops
    assert "ROOT:   table inet mosnet-firewall" in console
    assert ssh and not other, "mosfirewall=ssh: 22 open, 8080 dropped"
    assert "bad value" not in console and "Kernel panic" not in console
