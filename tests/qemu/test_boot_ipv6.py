"""IPv6 at boot in DHCP mode, both bridge backends (issue 16 point 4).

The provider namespace's dnsmasq leases IPv4 and sends RAs for
fd00:213:7::/64: either SLAAC (A flag, RDNSS) or the M flag with a stateful
DHCPv6 server. In the real root (after switch_root, the daemon having done
the RA and DHCPv6 part) ``mos`` must hold the address, the default route via
the gateway's link-local address and resolv.conf both families' servers.

Then a container-like namespace with a MAC of its own on br-mosnet, behind
a provider that drops foreign source MACs: it reaches the gateway over IPv6
and the gateway reaches it (and the host) from the provider side, with the
filter's drop counters at 0 and only the NIC MAC in the gateway's neighbours.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, OUT, Vm
from tests.qemu import provider
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec

CT4, CT6 = ".60", "::60"
EUI64 = "5054:ff:fe12:3456"  # the kernel's SLAAC interface id for GUEST_MAC (addr_gen_mode 0)
CASES = [("linux", "slaac"), ("ovs", "slaac"), ("linux", "dhcpv6"), ("ovs", "dhcpv6")]


def _gateway(tmp_path: Path, mode: str) -> Gateway:
    gw = Gateway(name=f"mosq6-{os.getpid()}-{mode}", workdir=tmp_path / "gw", ipv6=mode)
    gw.start()
    provider.filter_macs(gw, GUEST_MAC)
    return gw


def _cmdline(gw: Gateway, backend: str) -> str:
    ct = f"{gw.net}{CT4}/24,{gw.address},{gw.net6}{CT6}/64,{gw.address6}"
    return (
        f"root=/dev/vda rw mosbridge={backend} mostest.wait6=60 "
        f"mostest.container={ct} mostest.handshake mostest.ctbrief"
    )


def _section(console: str, title: str) -> list[str]:
    """The first report's lines under ``ROOT: --- <title>``, prefix stripped."""
    lines = console.splitlines()
    start = lines.index(f"ROOT: --- {title}") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("ROOT:   "):
            break
        out.append(line[len("ROOT:   ") :])
    return out


def _global6(console: str) -> dict[str, list[str]]:
    """Interface -> its global IPv6 addresses (``addr/len``) in the real root."""
    found: dict[str, list[str]] = {}
    dev = ""
    for line in _section(console, "addresses"):
        if m := re.match(r"\d+: ([^:@]+)[:@]", line):
            dev = m.group(1)
        elif m := re.match(r"\s+inet6 (\S+) scope global", line):
            found.setdefault(dev, []).append(m.group(1))
    return found


def _link_local(gw: Gateway) -> str:
    text = gw.run("ip", "-6", "-o", "addr", "show", "dev", "br0", "scope", "link").stdout
    found = re.search(r"inet6 (fe80::\S+)/64", text)
    assert found, text
    return found.group(1)


@pytest.mark.parametrize(("backend", "mode"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_ipv6_at_boot_and_macnat(
    images: dict[str, Path], tmp_path: Path, backend: str, mode: str
) -> None:
    initrd = OUT / "mosnet-initramfs-ovs.img" if backend == "ovs" else images["initrd"]
    if not initrd.exists():
        pytest.fail(f"{initrd} missing: run ./build.sh first")
    gw = _gateway(tmp_path, mode)
    spec = boot_spec({**images, "initrd": initrd}, _cmdline(gw, backend),
                     net="tap:tap0", netns=gw.name)  # fmt: skip
    ct6 = f"{gw.net6}{CT6}"
    try:
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: host turn: MAC NAT on", BOOT_TIMEOUT)
            router = _link_local(gw)  # br0 has one once the tap is up
            host6 = [a.split("/")[0] for a in _global6(vm.text()).get("mos", [])]
            pings = {a: provider.ping(gw, a) for a in (ct6, *host6)}
            neigh, drops = provider.neighbours(gw), provider.drops(gw)
            vm.send("go\n")
            vm.wait_for(r"^ROOT: done", 60)
            console = vm.text()
        dnsmasq = gw.dnsmasq_log.read_text()
    finally:
        gw.stop()
    _check_boot(console, gw, router, mode, dnsmasq)
    assert f"ROOT: container on br-mosnet ({backend})" in console
    for target in (gw.address, gw.address6):
        assert f"ROOT: container ping {target} (MAC NAT) ok" in console, target
    assert host6 and all(pings.values()), pings  # the gateway reaches container and host
    assert drops == {"foreign source MAC": 0, "unicast to a foreign MAC": 0}, drops
    assert neigh.get(ct6) == GUEST_MAC, neigh  # NDP for the container: the NIC MAC
    foreign = {ip: mac for ip, mac in neigh.items() if mac not in (GUEST_MAC, "")}
    assert not foreign, foreign


def _check_boot(console: str, gw: Gateway, router: str, mode: str, dnsmasq: str) -> None:
    """Address, default route and DNS of IPv6 on ``mos`` in the real root."""
    assert "ROOT: real init running as pid 1" in console
    assert re.search(r"ROOT: ipv6 ready after \d+ x0.5 s", console), console[-3000:]
    mine = _global6(console).get("mos", [])
    if mode == "slaac":  # the kernel's SLAAC from the RA's prefix; no DHCPv6 at all
        assert mine == [f"{gw.net6}:0:{EUI64}/64"], mine
        assert "DHCPSOLICIT" not in dnsmasq, dnsmasq[-2000:]
    else:  # M flag, no A flag: only the leased /128
        assert len(mine) == 1 and re.fullmatch(rf"{gw.net6}::1[0-9a-f]{{2}}/128", mine[0]), mine
        leased = mine[0].split("/")[0]
        assert re.search(rf"DHCPREPLY\(br0\) {re.escape(leased)} ", dnsmasq), dnsmasq[-3000:]
    routes = _section(console, "routes")
    assert any(re.match(rf"default via {router} dev mos ", r) for r in routes), routes
    resolv = _section(console, "/etc/resolv.conf")
    assert f"nameserver {gw.address}" in resolv and f"nameserver {gw.dns6}" in resolv, resolv
