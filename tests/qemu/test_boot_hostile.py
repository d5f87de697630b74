"""Hostile kernel command lines on a real boot (issue 13, point 7).

Three lines, each booted with ``panic=1`` (a kernel panic reboots, and
``-no-reboot`` turns that into a failed test at once):

* ``non-utf8``: bytes that are not UTF-8 (and control bytes) in parameters
  that are not mosnet's, in one of mosnet's, and 0xa0 as a separator;
* ``all-malformed``: every parameter PID 1 reads except ``root=``
  malformed at once (Unicode digits, leading zeros, overflow, typos);
* ``long``: a line at the kernel's 2047-byte limit with repeated keys.

Each must reach the real init with the network up by DHCP. The firewall is
checked from the gateway's side: the last *valid* ``mosfirewall=`` of a line
is the one in force (tcp 2222 open, 8080 closed), and a line whose every
``mosfirewall=`` is malformed leaves nftables alone (both open).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qemu.topology import Gateway
from qemu.vm import Vm
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec, http_get

COMMON = "root=/dev/vda rw panic=1 mostest.listen=2222,8080 mostest.wait=10"
# QEMU puts "console=ttyS0 panic=-1 " in front and boot_spec "rdinit=/mosnet-init ".
PREFIX = len("console=ttyS0 panic=-1 rdinit=/mosnet-init ")
KERNEL_MAX = 2047  # COMMAND_LINE_SIZE 2048 on x86, with the NUL

NON_UTF8 = (
    "acpi_junk=\udcff\udcfe\udcc3( foo=\udc80bar\x01\x7f vendor.opt=\udce2\udc82 \udcff\udcfe "
    "mosfirewall=ssh,tcp:2222\udca0mosdhcp_timeout=20 mosbridge=l\udcffinux"
)
ALL_MALFORMED = (
    "mosip4=10.0.0.²,10.0.0.1,24 mosip6=2001:db8::5/١٢٨,fe80::1 mosdhcp_timeout=٣ "
    "mosdhcp_prefer_private=maybe mosfirewall=sshh,tcp:22 mosnat=e/th0 mosbridge=ovz "
    "mosinit=chian mosshell=maybe mosdebug=2 mosroot_timeout=1e3 mosroot_sha256=²² "
    "mosroot_fetch_timeout=nan BOOTIF=01-52-54-00-12-34-5 ifname=lan0 nameserver=010.0.2.3 "
    "ip=dhcpp rootwait=0000000003601 rootdelay=-1 rootfstype=EXT4 rootflags=\udcff "
    "init=sbin/init ro=x loglevel=²"
)
ALL_MALFORMED_KEYS = 24


def _long_line() -> str:
    """Repeated keys up to the limit; the last valid mosfirewall= near the end."""
    head = [COMMON, "mosfirewall=permissive,tcp:8080", "nameserver=10.0.2.3"]
    tail = ["mosfirewall=ssh,tcp:2222", "mosfirewall=\udcff", "mosdhcp_timeout=30"]
    filler = ["mosdhcp_timeout=٣", "nameserver=10.0.2.3", "mosfirewall=permissive,tcp:8080",
              "x.junk=\udcff\udcfe", "mosbridge=linux"]  # fmt: skip
    words = list(head)
    budget = KERNEL_MAX - PREFIX - _size(" ".join(tail)) - 2
    i = 0
    while _size(" ".join([*words, filler[i % len(filler)]])) < budget:
        words.append(filler[i % len(filler)])
        i += 1
    return " ".join(words + tail)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


LINES = {
    "non-utf8": (f"{COMMON} {NON_UTF8}", True),
    "all-malformed": (f"{COMMON} {ALL_MALFORMED}", False),
    "long": (_long_line(), True),
}


@pytest.mark.parametrize("name", sorted(LINES))
def test_hostile_command_line_still_boots_with_dhcp(
    name: str, images: dict[str, Path], gateway: Gateway, tmp_path: Path
) -> None:
    line, firewalled = LINES[name]
    spec = boot_spec(images, line, net="tap:tap0", netns=gateway.name)
    assert _size(f"console=ttyS0 panic=-1 {spec.append}") <= KERNEL_MAX
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^ROOT: waiting", BOOT_TIMEOUT)
        addr = re.search(rf"ROOT:\s+inet ({re.escape(gateway.net)}\.\d+)/24 .* mos", vm.text())
        assert addr, f"no DHCP lease on mos:\n{vm.text()[-3000:]}"
        ports = {p: http_get(gateway, addr.group(1), p) for p in (2222, 8080)}
        vm.wait_for(r"^ROOT: done", 60)
        console = vm.text()
    assert "ROOT: real init running as pid 1" in console and "Kernel panic" not in console
    assert ports == {2222: True, 8080: not firewalled}, ports
    warned = re.findall(r"mosnet: ignoring kernel parameter (\S+): bad value", console)
    CHECKS[name](console, warned)
    found = re.search(r"^ROOT: state\.json (\{.*\})\s*$", console, re.M)
    assert found, "no state.json in the real root"
    state = json.loads(found.group(1))
    assert (state["network"]["mode"], state["boot"]["result"]) == ("dhcp", "switch_root")


def _check_non_utf8(console: str, warned: list[str]) -> None:
    assert warned == ["mosbridge"]
    assert r"ignoring kernel parameter mosbridge: bad value 'l\xffinux'" in console
    assert "firewall: applied inet mosnet-firewall" in console


def _check_all_malformed(console: str, warned: list[str]) -> None:
    assert len(warned) == ALL_MALFORMED_KEYS, warned
    assert f"{ALL_MALFORMED_KEYS} malformed parameter(s) ignored" in console
    assert "no mosfirewall= or mosnat=: nftables left alone" in console


def _check_long(console: str, warned: list[str]) -> None:
    assert warned == ["mosdhcp_timeout", "mosfirewall"]  # each distinct error once
    assert re.search(r"mosdhcp_timeout: bad value '٣', .* \(\d+ times\)", console)
    assert "firewall: applied inet mosnet-firewall" in console


CHECKS = {"non-utf8": _check_non_utf8, "all-malformed": _check_all_malformed, "long": _check_long}
