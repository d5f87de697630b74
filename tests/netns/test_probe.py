"""Gateway NIC probing and announcements across network namespaces.

Topology (names carry the pid; private addresses only):

    server ns            provider ns                     dead-end ns
    n0 ---------------------------------------------------- d0 (up, nothing else)
    n1 -------------- up1 in br0: 10.97.N.1/24, fe80::1,
                      fd00:97::1/64, route 10.98.N.5/32
    n2 ---------------------------------------------------- d2 (up)
    n3 ---------------------------------------------------- d3 (down: n3 has no carrier)

Probe code runs in the server ns through ``ip netns exec`` so that /sys shows
the server's interfaces. A capture process in the dead-end ns records every
ARP/NS frame reaching d0/d2, which proves all NICs are probed in the same rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else "python3"

PROBE = textwrap.dedent("""
    import json, logging, sys, time
    from ipaddress import ip_address
    from mosnet.base import log
    from mosnet.uplink import gateway as probe
    log.setup(level=logging.DEBUG)
    kind, gw, nics, timeout, sender = sys.argv[1:6]
    kw = {"timeout": float(timeout)}
    if kind == "4":
        fn, kw["sender_ip"] = probe.find_gateway_nic, ip_address(sender) if sender else None
    else:
        fn = probe.find_gateway_nic6
    t0 = time.monotonic()
    r = fn(nics.split(","), ip_address(gw), **kw)
    t1 = time.monotonic()
    print(json.dumps({"nic": r and r.nic, "mac": r and r.mac.hex(), "rtt": r and r.rtt,
                      "t0": t0, "t1": t1}))
""")

ANNOUNCE = textwrap.dedent("""
    import sys
    from ipaddress import ip_address
    from mosnet.l2 import announce
    from mosnet.base import netif
    nic, addr = sys.argv[1], ip_address(sys.argv[2])
    mac = netif.interface_mac(nic)
    fn = announce.gratuitous_arp if addr.version == 4 else announce.unsolicited_na
    print(fn(nic, mac, addr, count=2, interval=0.05))
""")

# Records (monotonic time, ifname, ethertype) of ARP and IPv6 frames arriving on any interface.
CAPTURE = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    out = open(sys.argv[1], "w", buffering=1)
    out.write("ready\\n")
    while True:
        data, addr = s.recvfrom(2048)
        kind = int.from_bytes(data[12:14], "big")
        if addr[2] != socket.PACKET_OUTGOING and kind in (0x0806, 0x86DD):
            out.write(f"{time.monotonic()} {addr[0]} {kind:x} {data[38:42].hex()}\\n")
""")


@dataclass
class Net:
    prov: str
    server: str
    dead: str
    n: int  # third octet
    capture: pathlib.Path

    def run(self, ns: str, *argv: str, timeout: float = 20) -> str:
        proc = subprocess.run(["ip", "netns", "exec", ns, *argv], cwd=REPO, text=True,
                              capture_output=True, timeout=timeout,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        self.last_stderr = proc.stderr
        return proc.stdout

    def probe(self, kind: str, gw: str, nics: str, timeout: float = 3.0, sender: str = "") -> Any:
        out = self.run(self.server, PY, "-c", PROBE, kind, gw, nics, str(timeout), sender)
        return json.loads(out)

    def mac(self, ns: str, dev: str) -> str:
        return str(json.loads(_ip("-n", ns, "-j", "link", "show", dev))[0]["address"])

    def neigh(self, addr: str) -> str | None:
        rows = json.loads(_ip("-n", self.prov, "-j", "neigh", "show", addr, "dev", "br0"))
        return rows[0].get("lladdr") if rows else None

    def captured(self, since: float) -> list[tuple[float, str, str, str]]:
        rows = [line.split() for line in self.capture.read_text().splitlines()[1:]]
        return [(float(t), dev, kind, tpa) for t, dev, kind, tpa in rows if float(t) >= since]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True,
                          timeout=10).stdout  # fmt: skip


def _build(net: Net) -> None:
    p, s, d = net.prov, net.server, net.dead
    for ns in (p, s, d):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", p, "link", "add", "br0", "type", "bridge")
    _ip("-n", s, "link", "add", "n1", "type", "veth", "peer", "name", "up1", "netns", p)
    _ip("-n", p, "link", "set", "up1", "master", "br0")
    for i in (0, 2, 3):
        _ip("-n", s, "link", "add", f"n{i}", "type", "veth", "peer", "name", f"d{i}", "netns", d)
    for ns, dev in ((p, "br0"), (p, "up1"), (d, "d0"), (d, "d2"),
                    (s, "n0"), (s, "n1"), (s, "n2"), (s, "n3")):  # fmt: skip
        _ip("-n", ns, "link", "set", dev, "up")
    _ip("-n", p, "addr", "add", f"10.97.{net.n}.1/24", "dev", "br0")
    _ip("-n", p, "route", "add", f"10.98.{net.n}.5/32", "dev", "br0")
    for addr in ("fe80::1/64", "fd00:97::1/64"):
        _ip("-n", p, "addr", "add", addr, "dev", "br0", "nodad")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2")
    pid = os.getpid()
    tmp = tmp_path_factory.mktemp("probe")
    net = Net(f"mosp-p{pid}", f"mosp-s{pid}", f"mosp-d{pid}", pid % 250 + 1, tmp / "capture")
    capture: subprocess.Popen[bytes] | None = None
    try:
        _build(net)
        capture = subprocess.Popen(["ip", "netns", "exec", net.dead, PY, "-c", CAPTURE,
                                    str(net.capture)])  # fmt: skip
        end = time.monotonic() + 5
        while not (net.capture.exists() and net.capture.read_text()) and time.monotonic() < end:
            time.sleep(0.02)
        _wait_carrier(net)
        yield net
    finally:
        if capture is not None and capture.poll() is None:
            os.kill(capture.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                capture.wait(timeout=5)
        for ns in (net.server, net.prov, net.dead):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _wait_carrier(net: Net) -> None:
    end = time.monotonic() + 5
    while time.monotonic() < end:
        states = [json.loads(_ip("-n", net.server, "-j", "link", "show", f"n{i}"))[0]["operstate"]
                  for i in (0, 1, 2)]  # fmt: skip
        if states == ["UP"] * 3:
            return
        time.sleep(0.05)
    pytest.fail(f"server NICs never came up: {states}")


@pytest.mark.parametrize("order", ["n1,n0,n2", "n0,n1,n2", "n0,n2,n1"])
def test_arp_finds_the_connected_nic_in_any_position(net: Net, order: str) -> None:
    got = net.probe("4", f"10.97.{net.n}.1", order, sender=f"10.97.{net.n}.7")
    assert got["nic"] == "n1"
    assert got["mac"] == net.mac(net.prov, "br0").replace(":", "")
    took = got["t1"] - got["t0"]
    print(f"ARP probe {order}: took {took * 1000:.1f} ms, rtt {got['rtt'] * 1000:.2f} ms")
    assert took < 0.5  # a NIC-by-NIC probe would wait out the wrong NICs first


def test_arp_probes_all_nics_in_parallel(net: Net) -> None:
    got = net.probe("4", f"10.97.{net.n}.1", "n0,n2,n1", sender=f"10.97.{net.n}.7")
    assert got["nic"] == "n1"
    time.sleep(0.1)  # let the capture catch up
    gw_hex = f"0a61{net.n:02x}01"
    seen = {dev: t for t, dev, kind, tpa in net.captured(got["t0"]) if kind == "806"
            and tpa == gw_hex}  # fmt: skip
    assert set(seen) == {"d0", "d2"}, seen
    # the wrong NICs were asked before the answer came, in the same round
    assert max(seen.values()) <= got["t1"]
    spread = max(seen.values()) - min(seen.values())
    print(f"parallel: took {(got['t1'] - got['t0']) * 1000:.1f} ms, d0/d2 sends "
          f"{spread * 1000:.2f} ms apart")  # fmt: skip


@pytest.mark.parametrize("sender", ["", "10.98.{n}.5"])
def test_arp_sender_forms(net: Net, sender: str) -> None:
    # "" is the RFC 5227 probe (0.0.0.0); 10.98.N.5 is a Hetzner-style /32 peer
    got = net.probe("4", f"10.97.{net.n}.1", "n0,n2,n1", sender=sender.format(n=net.n))
    assert got["nic"] == "n1"


def test_arp_no_reply_returns_none_within_timeout(net: Net) -> None:
    got = net.probe("4", f"10.97.{net.n}.99", "n0,n1,n2", timeout=1.0)
    took = got["t1"] - got["t0"]
    print(f"no reply: None after {took * 1000:.0f} ms (timeout 1000 ms)")
    assert got["nic"] is None and 1.0 <= took < 1.3
    time.sleep(0.1)
    gw_hex = f"0a61{net.n:02x}63"
    sends = [dev for _, dev, kind, tpa in net.captured(got["t0"]) if tpa == gw_hex]
    assert sends.count("d0") == sends.count("d2") == 3  # retransmitted at 0, 0.4, 0.8 s


def test_arp_skips_nics_without_carrier_and_missing_ones(net: Net) -> None:
    got = net.probe("4", f"10.97.{net.n}.1", "nosuch0,n3,n0,n1", sender=f"10.97.{net.n}.7")
    assert got["nic"] == "n1"
    assert "nosuch0: cannot probe" in net.last_stderr
    assert "n3: no carrier" in net.last_stderr


@pytest.mark.parametrize("gw", ["fe80::1", "fd00:97::1"])
def test_ns_finds_the_connected_nic(net: Net, gw: str) -> None:
    for order in ("n1,n0,n2", "n0,n2,n1"):
        got = net.probe("6", gw, order)
        took = got["t1"] - got["t0"]
        print(f"NS probe {gw} {order}: took {took * 1000:.1f} ms")
        assert got["nic"] == "n1" and took < 0.5
        assert got["mac"] == net.mac(net.prov, "br0").replace(":", "")


def test_ns_no_reply_returns_none(net: Net) -> None:
    got = net.probe("6", "fe80::99", "n0,n1,n2", timeout=0.8)
    assert got["nic"] is None and 0.8 <= got["t1"] - got["t0"] < 1.1


def _wait_neigh(net: Net, addr: str, want: str) -> str | None:
    end = time.monotonic() + 3
    while (got := net.neigh(addr)) != want and time.monotonic() < end:
        time.sleep(0.05)
    return got


@pytest.mark.parametrize("addr", ["10.97.{n}.50", "fd00:97::50"])
def test_announcement_updates_provider_neighbour(net: Net, addr: str) -> None:
    addr = addr.format(n=net.n)
    stale = "02:00:00:00:00:99"
    _ip("-n", net.prov, "neigh", "replace", addr, "lladdr", stale, "dev", "br0", "nud", "stale")
    assert net.neigh(addr) == stale
    assert net.run(net.server, PY, "-c", ANNOUNCE, "n1", addr).strip() in ("4", "2")
    want = net.mac(net.server, "n1")
    assert _wait_neigh(net, addr, want) == want
