"""The ARP/NDP proxy loop against a real kernel neighbour table.

Topology (names carry the pid; 10.74.N.0/24 and fd00:74:N::/64 only):

    proxy ns: mxp<pid> (NAT MAC 02:74:..:01, NO proxied address on it)
        | veth
    peer ns:  mxq<pid> 10.74.N.2/24, fd00:74:N::2/64

The proxy answers for host .10/::10 and guest .11/::11 and the announce-only
.13/::13; the gateway .1/::1 is in the address sets *and* in the gateways, so
it must stay unanswered; .12/::12 is not configured. Only the proxy can make
the peer kernel learn a MAC for any of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.utils6 import in6_getnsma, in6_getnsmac

pytestmark = pytest.mark.netns

REPO = pathlib.Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else "python3"
NAT = "02:74:00:00:00:01"
PEER = "02:74:00:00:00:02"
STALE = "02:74:00:00:00:99"

PROXY = textwrap.dedent("""
    import logging, signal, sys
    from ipaddress import ip_address
    from mosnet.base import log
    from mosnet.base import netif
    from mosnet.proxy import proxyd
    from mosnet.proxy.answers import ProxyConfig
    log.setup(level=logging.DEBUG)
    nic = sys.argv[1]
    v4, v6, gws = (frozenset(map(ip_address, arg.split(","))) for arg in sys.argv[2:5])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    cfg = ProxyConfig(netif.interface_mac(nic), v4, v6, gws)
    proxyd.announce_all(nic, cfg, count=2, interval=0.05)
    counters = proxyd.run(nic, cfg, lambda: bool(stop), poll_interval=0.05, stats_every=1.0)
    print(counters.line(), flush=True)
""")

KICK = textwrap.dedent("""
    import socket, sys
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    socket.socket(fam, socket.SOCK_DGRAM).sendto(b"x", (sys.argv[1], 9))
""")

# Sends each frame (hex) and prints, per frame, the ARP/NA frames from the NAT MAC seen in
# 0.3 s; the proxy ns kernel's own MLD reports and DAD also come from that MAC.
SENDER = textwrap.dedent("""
    import json, socket, sys, time
    nic, nat = sys.argv[1], bytes.fromhex(sys.argv[2])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((nic, 3))
    s.settimeout(0.05)
    out = []
    for frame in sys.argv[3:]:
        s.send(bytes.fromhex(frame))
        got, end = [], time.monotonic() + 0.3
        while time.monotonic() < end:
            try:
                data, addr = s.recvfrom(2048)
            except TimeoutError:
                continue
            kind = int.from_bytes(data[12:14], "big")
            arp_or_na = kind == 0x0806 or kind == 0x86DD and data[54] == 136
            if addr[2] != socket.PACKET_OUTGOING and data[6:12] == nat and arp_or_na:
                got.append(data.hex())
        out.append(got)
    print(json.dumps(out))
""")


@dataclass
class Lab:
    proxy_ns: str
    peer_ns: str
    proxy_if: str
    peer_if: str
    n: int
    proc: subprocess.Popen[str] | None = None
    stderr: pathlib.Path | None = None

    def v4(self, host: int) -> str:
        return f"10.74.{self.n}.{host}"

    def v6(self, host: int) -> str:
        return f"fd00:74:{self.n}::{host}"

    def neigh(self, addr: str) -> str | None:
        rows = json.loads(_ip("-n", self.peer_ns, "-j", "neigh", "show", addr, "dev", self.peer_if))
        return rows[0].get("lladdr") if rows else None

    def ask_kernel(self, addr: str) -> str | None:
        """Make the peer kernel resolve ``addr``; the MAC it learnt, if any."""
        # a UDP datagram to the discard port makes the kernel ARP/NS for it
        argv = [PY, "-c", KICK, addr]
        subprocess.run(["ip", "netns", "exec", self.peer_ns, *argv], check=True,
                       capture_output=True, timeout=10)  # fmt: skip
        end = time.monotonic() + 1.0
        while self.neigh(addr) is None and time.monotonic() < end:
            time.sleep(0.05)
        return self.neigh(addr)

    def send(self, *frames: bytes) -> list[list[bytes]]:
        argv = [PY, "-c", SENDER, self.peer_if, NAT.replace(":", ""), *(f.hex() for f in frames)]
        out = subprocess.run(["ip", "netns", "exec", self.peer_ns, *argv], capture_output=True,
                             text=True, timeout=30, check=True).stdout  # fmt: skip
        return [[bytes.fromhex(h) for h in got] for got in json.loads(out)]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True,
                          timeout=10).stdout  # fmt: skip


def _build(lab: Lab) -> None:
    p, q = lab.proxy_ns, lab.peer_ns
    for ns in (p, q):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", p, "link", "add", lab.proxy_if, "address", NAT, "type", "veth",
        "peer", "name", lab.peer_if, "address", PEER, "netns", q)  # fmt: skip
    _ip("-n", q, "addr", "add", f"{lab.v4(2)}/24", "dev", lab.peer_if)
    _ip("-n", q, "addr", "add", f"{lab.v6(2)}/64", "dev", lab.peer_if, "nodad")
    for ns, dev in ((p, lab.proxy_if), (q, lab.peer_if)):
        _ip("-n", ns, "link", "set", dev, "up")
    # announcements only update entries a Linux peer already has (arp_accept=0,
    # accept_untracked_na=0): seed stale ones pointing elsewhere
    for addr in (lab.v4(13), lab.v6(13)):
        _ip("-n", q, "neigh", "replace", addr, "lladdr", STALE, "dev", lab.peer_if, "nud", "stale")


def _wait_up(lab: Lab) -> None:
    """Until linkwatch marks both ends UP the veth transmits into a noop qdisc."""
    end = time.monotonic() + 5
    while time.monotonic() < end:
        ends = ((lab.proxy_ns, lab.proxy_if), (lab.peer_ns, lab.peer_if))
        states = [json.loads(_ip("-n", ns, "-j", "link", "show", dev))[0]["operstate"]
                  for ns, dev in ends]  # fmt: skip
        if states == ["UP", "UP"]:
            return
        time.sleep(0.02)
    pytest.fail(f"veth never came up: {states}")


def _start_proxy(lab: Lab, tmp: pathlib.Path) -> None:
    v4 = ",".join(lab.v4(h) for h in (10, 11, 13, 1))
    v6 = ",".join(lab.v6(h) for h in (10, 11, 13, 1))
    gws = f"{lab.v4(1)},{lab.v6(1)}"
    lab.stderr = tmp / "proxy.log"
    with open(lab.stderr, "w") as err:
        lab.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.proxy_ns, PY, "-c", PROXY, lab.proxy_if, v4, v6, gws],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
    end = time.monotonic() + 10
    while "ARP/NDP proxy for" not in lab.stderr.read_text():
        if lab.proc.poll() is not None or time.monotonic() > end:
            pytest.fail(f"proxy did not start: {lab.stderr.read_text()}")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=5)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2")
    pid = os.getpid()
    lab = Lab(f"mosx-p{pid}", f"mosx-q{pid}", f"mxp{pid}", f"mxq{pid}", pid % 250 + 1)
    try:
        _build(lab)
        _wait_up(lab)
        _start_proxy(lab, tmp_path_factory.mktemp("proxyd"))
        yield lab
    finally:
        if lab.proc is not None:
            _stop(lab.proc)
        for ns in (lab.peer_ns, lab.proxy_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _wait_neigh(lab: Lab, addr: str, want: str) -> str | None:
    end = time.monotonic() + 3
    while (got := lab.neigh(addr)) != want and time.monotonic() < end:
        time.sleep(0.05)
    return got


@pytest.mark.parametrize("host", [13])
def test_announcements_at_start_update_the_peer(lab: Lab, host: int) -> None:
    assert _wait_neigh(lab, lab.v4(host), NAT) == NAT
    assert _wait_neigh(lab, lab.v6(host), NAT) == NAT


@pytest.mark.parametrize("host", [10, 11], ids=["host", "guest"])
def test_kernel_learns_nat_mac_for_configured_v4(lab: Lab, host: int) -> None:
    assert lab.ask_kernel(lab.v4(host)) == NAT


@pytest.mark.parametrize("host", [10, 11], ids=["host", "guest"])
def test_kernel_learns_nat_mac_for_configured_v6(lab: Lab, host: int) -> None:
    assert lab.ask_kernel(lab.v6(host)) == NAT


@pytest.mark.parametrize("host", [1, 12], ids=["gateway", "unconfigured"])
def test_gateway_and_unconfigured_stay_unresolved(lab: Lab, host: int) -> None:
    assert lab.ask_kernel(lab.v4(host)) is None
    assert lab.ask_kernel(lab.v6(host)) is None


def _arp(lab: Lab, tpa: int, *, dst: str = "ff:ff:ff:ff:ff:ff", op: int = 1,
         spa: str | None = None) -> bytes:  # fmt: skip
    return bytes(Ether(dst=dst, src=PEER)
                 / ARP(op=op, hwsrc=PEER, psrc=spa or lab.v4(2), pdst=lab.v4(tpa)))  # fmt: skip


def _ns(lab: Lab, target: int, *, hlim: int = 255, sllao: bool = True) -> bytes:
    tgt = lab.v6(target)
    group = in6_getnsma(socket.inet_pton(socket.AF_INET6, tgt))
    pkt = (
        Ether(dst=in6_getnsmac(group), src=PEER)
        / IPv6(src=lab.v6(2), dst=socket.inet_ntop(socket.AF_INET6, group), hlim=hlim)
        / ICMPv6ND_NS(tgt=tgt)
    )
    return bytes(pkt / ICMPv6NDOptSrcLLAddr(lladdr=PEER) if sllao else pkt)


def test_crafted_requests(lab: Lab) -> None:
    got = lab.send(
        _arp(lab, 10),
        _arp(lab, 10, dst="02:74:00:00:00:77"),  # unicast to another MAC
        _arp(lab, 10, op=2, dst=NAT),  # a reply
        _arp(lab, 10, spa=lab.v4(10)),  # gratuitous
        _ns(lab, 11),
        _ns(lab, 11, hlim=254),
        _ns(lab, 11, sllao=False),
    )
    assert [len(replies) for replies in got] == [1, 0, 0, 0, 1, 0, 0]
    arp = Ether(got[0][0])
    assert (arp.dst, arp[ARP].op, arp[ARP].hwsrc, arp[ARP].psrc) == (PEER, 2, NAT, lab.v4(10))
    na = Ether(got[4][0])
    assert (na.dst, na[IPv6].dst, na[IPv6].hlim) == (PEER, lab.v6(2), 255)
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O, na[ICMPv6ND_NA].tgt) == (1, 0, lab.v6(11))
    assert na[ICMPv6NDOptDstLLAddr].lladdr == NAT


def test_proxy_stops_on_sigterm_with_counters(lab: Lab) -> None:
    assert lab.proc is not None
    out = _stop(lab.proc)
    assert lab.proc.returncode == 0, lab.stderr and lab.stderr.read_text()
    assert " 0 errors" in out and "0 answered" not in out.split(",")[1], out
    print(out)
