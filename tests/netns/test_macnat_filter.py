"""MAC NAT (``table bridge mosnet-macnat``) against a MAC-filtering provider.

Topology (names carry the pid; cleanup by PID and ``ip netns del``):

    provider ns: bridge pbr 10.66.X.1 / fd00:66:X::1, port pv0, table bridge
                 macfilter (ovs-in-qemu.md §5): drop frames from pv0 whose
                 source is not UPMAC, drop unicast to pv0 not for UPMAC
        | veth pv0 <-> up0
    server ns:   br-mosnet: up0 (UPMAC, uplink), public-br <-> public (UPMAC,
                 10.66.X.2, the host port), c0 <-> ct0 (container)
    container ns: ct0 (CTMAC) 10.66.X.50 / fd00:66:X::50

The provider side captures every frame arriving from the server (AF_PACKET)
and the test asserts that CTMAC's six bytes are in none of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.netns import framecap

REPO = pathlib.Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable
NFT = "/usr/sbin/nft"
BUSYBOX = "/bin/busybox"
UPMAC = "02:66:00:00:00:01"
CTMAC = "02:66:00:00:00:50"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(NFT) or not os.path.exists(BUSYBOX),
    reason="needs root, nft and busybox",
)

FILTER = """
table bridge macfilter {{
  chain pre {{
    type filter hook prerouting priority -200; policy accept;
    iifname "pv0" ether saddr {up} counter accept
    iifname "pv0" counter drop comment "foreign source"
  }}
  chain post {{
    type filter hook postrouting priority -200; policy accept;
    oifname "pv0" ether daddr != {up} ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 \
counter drop comment "foreign destination"
  }}
}}
"""


@dataclass
class Lab:
    prov: str
    srv: str
    ct: str
    net4: str  # "10.66.X"
    net6: str  # "fd00:66:X"

    def run(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            text=True,
            capture_output=True,
            timeout=30,
            check=check,
        )

    def ping(self, ns: str, addr: str, tries: int = 3) -> bool:
        """One echo, up to ``tries`` times (the first waits for ARP/NDP)."""
        argv = [BUSYBOX, "ping", "-6" if ":" in addr else "-4", "-c", "1", "-W", "2", addr]
        return any(self.run(ns, *argv, check=False).returncode == 0 for _ in range(tries))

    def macnat(self, code: str) -> str:
        return self.run(
            self.srv, PY, "-c", f"from mosnet.macnat import bridgenft as macnat\n{code}"
        ).stdout

    def drops(self) -> dict[str, int]:
        """Packets counted by the provider filter's drop rules, by comment."""
        text = self.run(self.prov, NFT, "-j", "list", "table", "bridge", "macfilter").stdout
        doc = json.loads(text)
        out: dict[str, int] = {}
        for item in doc["nftables"]:
            rule = item.get("rule")
            if rule and "comment" in rule:
                counter = next(e["counter"] for e in rule["expr"] if "counter" in e)
                out[rule["comment"]] = counter["packets"]
        return out

    def flush_neigh(self) -> None:
        for ns, dev in ((self.prov, "pbr"), (self.ct, "ct0")):
            self.run(ns, "ip", "neigh", "flush", "dev", dev, check=False)

    def capture(self) -> contextlib.AbstractContextManager[list[bytes]]:
        """Frames pv0 receives from the server while the block runs."""
        return framecap.capture(self.prov, "pv0", PY)


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


def _build(lab: Lab) -> None:
    p, s, c = lab.prov, lab.srv, lab.ct
    for ns in (p, s, c):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", p, "link", "add", "pbr", "type", "bridge")
    _ip("-n", p, "link", "add", "pv0", "type", "veth", "peer", "name", "up0", "netns", s)
    _ip("-n", p, "link", "set", "pv0", "master", "pbr", "up")
    _ip("-n", p, "addr", "add", f"{lab.net4}.1/24", "dev", "pbr")
    _ip("-n", p, "addr", "add", f"{lab.net6}::1/64", "dev", "pbr", "nodad")
    _ip("-n", p, "link", "set", "pbr", "up")
    subprocess.run(
        ["ip", "netns", "exec", p, NFT, "-f", "-"],
        input=FILTER.format(up=UPMAC),
        text=True,
        check=True,
        capture_output=True,
        timeout=10,
    )
    # the server: what mosnet.topology.bridge.LinuxBridge builds, by hand
    _ip("-n", s, "link", "add", "br-mosnet", "address", "00:66:00:00:00:01", "type", "bridge")
    _ip(
        "-n", s, "link", "add", "public", "address", UPMAC, *"type veth peer name public-br".split()
    )
    _ip("-n", s, "link", "add", "c0", "type", "veth", "peer", "name", "ct0", "netns", c)
    for dev in ("br-mosnet", "public-br", "up0", "c0"):
        lab.run(s, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
    lab.run(s, "sysctl", "-qw", "net.ipv4.conf.br-mosnet.arp_ignore=8")
    _ip("-n", s, "link", "set", "up0", "address", UPMAC)
    for dev in ("up0", "public-br", "c0"):
        _ip("-n", s, "link", "set", dev, "master", "br-mosnet", "up")
    # the NIC's MAC belongs to "public", not to the bridge (ForgetLocalMac)
    lab.run(s, "bridge", "fdb", "del", UPMAC, "dev", "up0", "master", check=False)
    _ip("-n", s, "addr", "add", f"{lab.net4}.2/24", "dev", "public")
    _ip("-n", s, "link", "set", "br-mosnet", "up")
    _ip("-n", s, "link", "set", "public", "up")
    _ip("-n", c, "link", "set", "ct0", "address", CTMAC, "up")
    _ip("-n", c, "addr", "add", f"{lab.net4}.50/24", "dev", "ct0")
    _ip("-n", c, "addr", "add", f"{lab.net6}::50/64", "dev", "ct0", "nodad")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    pid, x = os.getpid(), os.getpid() % 250
    lab = Lab(f"mxp{pid}", f"mxs{pid}", f"mxc{pid}", f"10.66.{x}", f"fd00:66:{x:x}")
    try:
        _build(lab)
        yield lab
    finally:
        for ns in (lab.prov, lab.srv, lab.ct):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


def _leaks(frames: list[bytes]) -> list[str]:
    """Frames with CTMAC anywhere: Ethernet header, ARP body, NDP options."""
    return framecap.leaks(frames, CTMAC)


def test_without_macnat_the_filter_blocks_the_container(lab: Lab) -> None:
    assert lab.macnat("print(macnat.remove())").strip() == "None"
    lab.flush_neigh()
    before = lab.drops()
    with lab.capture() as frames:
        assert not lab.ping(lab.ct, f"{lab.net4}.1", tries=1)
    assert lab.drops()["foreign source"] > before["foreign source"]
    assert _leaks(frames), "the capture must see the container MAC without MAC NAT"
    assert lab.ping(lab.prov, f"{lab.net4}.2"), "the host port works without MAC NAT"


def test_macnat_ipv4_passes_the_filter_without_leaking(lab: Lab) -> None:
    res = lab.macnat(f"r = macnat.load('up0', {UPMAC!r})\nprint(r.ok, r.errors)")
    assert res.strip() == "True ()"
    lab.flush_neigh()
    before = lab.drops()
    with lab.capture() as frames:
        assert lab.ping(lab.ct, f"{lab.net4}.1"), "container -> gateway"
        assert lab.ping(lab.prov, f"{lab.net4}.50"), "gateway -> container"
        assert lab.ping(lab.prov, f"{lab.net4}.2"), "gateway -> host port"
    assert lab.drops() == before, "the provider filter dropped nothing"
    assert not _leaks(frames)
    arp = [f for f in frames if f[12:14] == b"\x08\x06"]
    assert arp and all(f[22:28] == bytes.fromhex(UPMAC.replace(":", "")) for f in arp)
    neigh = lab.run(lab.prov, "ip", "-j", "neigh", "show", "dev", "pbr").stdout
    macs = {n["dst"]: n.get("lladdr") for n in json.loads(neigh)}
    assert macs[f"{lab.net4}.50"] == UPMAC and macs[f"{lab.net4}.2"] == UPMAC
    got = json.loads(lab.macnat("import json; print(json.dumps(macnat.bindings()))"))
    # the host port is never learned; the guest's IPv6 (RS, MLD) may be
    assert got[f"{lab.net4}.50"] == CTMAC and set(got.values()) == {CTMAC}


def test_macnat_ipv6_drops_guest_ndp_and_rewrites_data(lab: Lab) -> None:
    """Guest NDP never leaves; with neighbours resolved (the proxy's job, here
    static entries) ICMPv6 data is rewritten both ways like IPv4."""
    res = lab.macnat(f"r = macnat.load('up0', {UPMAC!r}, ('c0',))\nprint(r.ok)")
    assert res.strip() == "True"
    gw_mac = json.loads(lab.run(lab.prov, "ip", "-j", "link", "show", "pbr").stdout)[0]["address"]
    lab.run(lab.prov, "ip", "-6", "neigh", "replace", f"{lab.net6}::50", "lladdr", UPMAC,
            "dev", "pbr", "nud", "permanent")  # fmt: skip
    lab.run(lab.ct, "ip", "-6", "neigh", "replace", f"{lab.net6}::1", "lladdr", gw_mac,
            "dev", "ct0", "nud", "permanent")  # fmt: skip
    before = lab.drops()
    with lab.capture() as frames:
        assert not lab.ping(lab.ct, f"{lab.net6}::99", tries=1), "NS for an unknown neighbour"
        assert lab.ping(lab.ct, f"{lab.net6}::1"), "container -> gateway (IPv6)"
        assert lab.ping(lab.prov, f"{lab.net6}::50"), "gateway -> container (IPv6)"
    assert lab.drops() == before
    assert not _leaks(frames)
    table = lab.run(lab.srv, NFT, "-j", "list", "chain", "bridge", "mosnet-macnat", "egress")
    rules = [i["rule"] for i in json.loads(table.stdout)["nftables"] if "rule" in i]
    ndp = next(r for r in rules if r.get("comment") == "guest NDP")
    assert next(e["counter"] for e in ndp["expr"] if "counter" in e)["packets"] > 0


PROXY = textwrap.dedent("""
    import sys
    from ipaddress import ip_address
    from mosnet.base import log
    from mosnet.base import netif
    from mosnet.daemon import proxyproc
    from mosnet.proxy.answers import ProxyConfig
    log.setup()
    nic, host4, gw4, gw6 = sys.argv[1:5]
    cfg = ProxyConfig(netif.interface_mac(nic), frozenset({ip_address(host4)}), frozenset(),
                      frozenset({ip_address(gw4), ip_address(gw6)}))
    sys.exit(proxyproc.child_main(proxyproc.ProxySpec(nic, cfg)))
""")
L2ASK = str(REPO / "tests" / "netns" / "l2ask.py")


def _ask(lab: Lab, *targets: str) -> dict[str, str]:
    """What the provider hears back for ARP/NS about each target (``-``: nothing)."""
    out = {}
    for t in targets:
        src = f"{lab.net6}::7" if ":" in t else f"{lab.net4}.7"
        line = lab.run(lab.prov, PY, L2ASK, "pbr", src, t).stdout.split(maxsplit=1)
        out[t] = line[1].strip()
    return out


def test_proxy_and_ndp_relay_carry_ipv6_guests(lab: Lab) -> None:
    """No static neighbours: the relay carries the guest's NS/NA out with the
    NIC MAC and the proxy answers the provider for learned guest addresses,
    never for the gateway or an unconfigured address."""
    res = lab.macnat(f"r = macnat.load('up0', {UPMAC!r}, ('c0',))\nprint(r.ok)")
    assert res.strip() == "True"
    for ns, dev in ((lab.prov, "pbr"), (lab.ct, "ct0")):
        lab.run(ns, "ip", "-6", "neigh", "flush", "dev", dev, check=False)
    lab.flush_neigh()
    argv = ["ip", "netns", "exec", lab.srv, PY, "-c", PROXY, "up0", f"{lab.net4}.2",
            f"{lab.net4}.1", f"{lab.net6}::1"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        before = lab.drops()
        with lab.capture() as frames:
            assert lab.ping(lab.ct, f"{lab.net6}::1"), "container -> gateway (IPv6, real NDP)"
            assert lab.ping(lab.ct, f"{lab.net4}.1"), "container -> gateway (IPv4)"
            lab.run(lab.prov, "ip", "-6", "neigh", "flush", "dev", "pbr", check=False)
            assert lab.ping(lab.prov, f"{lab.net6}::50"), "gateway -> container (IPv6)"
            answers = _ask(
                lab, f"{lab.net4}.50", f"{lab.net6}::50", f"{lab.net4}.2",
                f"{lab.net4}.1", f"{lab.net6}::1", f"{lab.net4}.99", f"{lab.net6}::99",
            )  # fmt: skip
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert lab.drops() == before, "the provider filter dropped nothing"
        assert not _leaks(frames)
        assert UPMAC in answers[f"{lab.net4}.50"].split(), err
        assert set(answers[f"{lab.net6}::50"].split()) == {UPMAC}, (answers, err)
        assert UPMAC in answers[f"{lab.net4}.2"].split()
        for silent in (f"{lab.net4}.1", f"{lab.net6}::1", f"{lab.net4}.99", f"{lab.net6}::99"):
            assert answers[silent] == "-", (silent, answers)
        neigh = lab.run(lab.prov, "ip", "-j", "-6", "neigh", "show", "dev", "pbr").stdout
        macs = {n["dst"]: n.get("lladdr") for n in json.loads(neigh)}
        assert macs[f"{lab.net6}::50"] == UPMAC
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=10)
    assert "guest address" in err and "NDP relay" in err, err
