"""A whole lease life against ISC Kea with second-scale timers: unicast RENEW at
T1, broadcast REBIND after T2 with the server gone, the address removed at
expiry, a new lease once the server is back; NAKs (foreign: ignored; ours:
restart) and an address conflict (ARP probe -> DHCPDECLINE -> another lease).
The client runs ``run_forever`` in its namespace; evidence comes from its log,
Kea's log, a capture on the server's veth and the client's kernel state."""

from __future__ import annotations

import pathlib
import subprocess
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.netns import kea
from tests.netns.kea import KeaNet

VALID, T1, T2 = 16, 4, 9  # Kea takes seconds; the client's min_retransmit is lowered
DAEMON_CFG: dict[str, Any] = {
    "machine": {"min_retransmit": 1.0, "max_backoff": 4.0, "restart_delay": 1.0}
}


@pytest.fixture
def net(tmp_path: pathlib.Path) -> Iterator[KeaNet]:
    with kea.kea_net(tmp_path) as n:
        yield n


def _short(net: KeaNet, **kw: Any) -> dict[str, Any]:
    return net.config(
        valid=VALID,
        renew=T1,
        rebind=T2,
        options=[{"name": "routers", "data": f"{net.prefix}.1"}],
        **kw,
    )


def _captured(path: pathlib.Path) -> list[list[str]]:
    """[src, dst, msg type, ciaddr, requested ip] per packet to port 67."""
    return [line.split() for line in path.read_text().splitlines()]


class Daemon:
    def __init__(self, net: KeaNet, cfg: dict[str, Any]) -> None:
        self.net = net
        self.proc, self.path = kea.start_daemon(net, cfg)

    def text(self) -> str:
        return self.path.read_text(errors="replace")

    def dump(self) -> str:
        return f"--- client\n{self.text()[-4000:]}\n--- kea\n{self.net.log_text()[-3000:]}"

    def wait(self, needle: str, timeout: float, count: int = 1) -> float:
        kea.wait_for(lambda: self.text().count(needle) >= count, timeout, repr(needle), self.dump)
        return time.monotonic()

    def stop(self) -> str:
        kea.stop_pid(self.proc)
        return self.text()


def _assert_clean_single(net: KeaNet, addr: str, prefix: str = "") -> None:
    """Exactly one address and one copy of each route: nothing leaked."""
    addrs = net.client_addrs()
    assert [a["local"] for a in addrs] == [addr], addrs
    prefix = prefix or net.prefix
    routes = net.client_routes()
    keys = [(r.get("dst"), r.get("gateway"), r.get("protocol")) for r in routes]
    assert len(keys) == len(set(keys)), routes
    assert sorted(keys, key=str) == sorted(
        [("default", f"{prefix}.1", "dhcp"), (f"{prefix}.0/24", None, "kernel")], key=str
    ), routes


def test_renew_rebind_expire_and_new_lease(net: KeaNet) -> None:
    cap = net.start_capture()
    net.start_kea(_short(net))
    d = Daemon(net, DAEMON_CFG)
    t_bound = d.wait("HOOK bind", 15)
    addr = d.text().split("HOOK bind ", 1)[1].split()[0]
    server = f"{net.prefix}.1"

    # T1: unicast RENEW from the leased address, ciaddr set; Kea extends the lease
    d.wait("BOUND -> RENEWING", T1 + 3)
    t_renewed = d.wait(f"renewed {addr}", 5)
    assert T1 - 1 <= t_renewed - t_bound <= T1 + 3
    renews = [p for p in _captured(cap) if p[2] == "3" and p[1] == server]
    assert renews and renews[0][0] == addr and renews[0][3] == addr, _captured(cap)
    assert f"DHCPREQUEST (type 3) received from {addr} to {server}" in net.log_text()
    assert f"unicast to {server}" in d.text()

    # server gone: RENEW retransmits unanswered, then a broadcast REBIND after T2
    net.stop_kea()
    t_stop = time.monotonic()
    d.wait("RENEWING -> REBINDING", T2 + 3)
    assert time.monotonic() - t_renewed >= T2 - 1
    time.sleep(0.3)
    rebinds = [
        p for p in _captured(cap) if p[2] == "3" and p[1] == "255.255.255.255" and p[3] == addr
    ]
    assert rebinds and rebinds[0][0] == addr, _captured(cap)

    # expiry: the hook removed the address and every route it had added
    d.wait(f"lost {addr}: lease expired", VALID + 3 - (time.monotonic() - t_renewed))
    d.wait(f"HOOK removed {addr}", 2)
    assert time.monotonic() - t_renewed >= VALID - 1
    assert net.client_addrs() == [], net.client_addrs()
    assert net.client_routes() == [], net.client_routes()
    assert time.monotonic() - t_stop < VALID + 5

    # server back: DISCOVER retransmits (max_backoff 4 s) find it, new lease
    mark = len(net.log_text())
    net.start_kea(_short(net))
    d.wait("HOOK bind", 12, count=2)
    log = d.stop()
    assert "HOOK stopped" in log, log[-2000:]
    new = log.rsplit("HOOK bind ", 1)[1].split()[0]
    assert f"lease {new} has been allocated" in net.log_text()[mark:]
    _assert_clean_single(net, new)


# A rogue server in the server namespace: answers every renewal REQUEST with a
# NAK carrying a foreign server id. The client must ignore it (RFC 2131 4.4.5
# only lets the lease's server revoke it).
FORGER = textwrap.dedent("""
    import socket, sys
    from ipaddress import IPv4Address
    from mosnet.dhcp4 import codec
    ifname, foreign = sys.argv[1], IPv4Address(sys.argv[2])
    out = open(sys.argv[3], "w", buffering=1)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    s.bind((ifname, 0x0800))
    out.write("ready\\n")
    while True:
        p = s.recv(2048)
        try:
            src, dst, sport, dport, data = codec.parse_ip_udp(p, check_udp=False)
            msg = codec.decode(data)
        except codec.DecodeError:
            continue
        if dport != 67 or msg.msg_type != codec.REQUEST or msg.ciaddr == codec.ZERO:
            continue
        nak = codec.Message(codec.BOOTREPLY, msg.xid, msg.chaddr,
                            ((53, bytes([codec.NAK])), (54, foreign.packed),
                             (56, b"forged")))
        frame = codec.ip_udp_frame(foreign, IPv4Address("255.255.255.255"), 67, 68,
                                   codec.encode(nak))
        s.sendto(frame, (ifname, 0x0800, 0, 0, b"\\xff" * 6))
        out.write(f"forged NAK xid {msg.xid:#x}\\n")
""")


def test_nak_foreign_ignored_ours_restarts(net: KeaNet) -> None:
    first = f"{net.prefix}.100"
    cfg = _short(net, pool=f"{first} - {first}")
    net.start_kea(cfg)
    forged = net.tmp / "forged.txt"
    # the rogue runs from the start (it only answers renewals) so a slow start
    # under load cannot make it miss the first one
    forger = net.popen_in(
        net.server_ns,
        [kea.PY, "-c", FORGER, net.server_if, f"{net.prefix}.77", str(forged)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kea.wait_for(lambda: forged.exists() and "ready" in forged.read_text(), 15, "forger")
    d = Daemon(net, DAEMON_CFG)
    d.wait(f"HOOK bind {first}", 15)
    # Kea answers a renewal in ~3 ms, before the rogue's Python can: so it is
    # stopped for the first renewal, which only the rogue answers (with a NAK)
    net.stop_kea()
    d.wait(f"ignoring NAK from {net.prefix}.77", T1 + 4)
    assert f"lost {first}" not in d.text()
    net.start_kea(cfg)  # the retransmission (or the REBINDING broadcast) gets its ACK
    d.wait(f"renewed {first}", T2 + 4)
    assert "forged NAK" in forged.read_text()
    kea.stop_pid(forger)

    # Kea restarted on another subnet: it selects subnets of renewals by ciaddr,
    # finds none and NAKs (DHCP4_PACKET_NAK_0001) -- from the lease's own server
    # id, so the client drops the address and starts over in the new subnet
    moved = net.prefix.replace("10.93.", "10.95.", 1)
    second = f"{moved}.100"
    net.start_kea(
        net.config(
            valid=VALID,
            renew=T1,
            rebind=T2,
            subnet=f"{moved}.0/24",
            pool=f"{second} - {second}",
            authoritative=True,
            options=[{"name": "routers", "data": f"{moved}.1"}],
        )
    )
    d.wait(f"lost {first}: NAK from {net.prefix}.1", T1 + 4)
    d.wait(f"HOOK removed {first}", 2)
    d.wait(f"HOOK bind {second}", 15)
    log = d.stop()
    assert "DHCP4_PACKET_NAK_0001" in net.log_text(), net.log_text()[-3000:]
    assert log.count("lost ") == 1, log
    _assert_clean_single(net, second, moved)


def test_conflict_declines_and_gets_another_lease(net: KeaNet) -> None:
    taken, free = f"{net.prefix}.100", f"{net.prefix}.101"
    # "another host": the server namespace itself holds the offered address, so
    # its kernel answers the client's ARP probe for it
    subprocess.run(
        ["ip", "-n", net.server_ns, "addr", "add", f"{taken}/32", "dev", net.server_if],
        check=True,
        timeout=10,
    )
    cap = net.start_capture()
    net.start_kea(
        net.config(
            valid=120,
            pool=f"{taken} - {free}",
            options=[{"name": "routers", "data": f"{net.prefix}.1"}],
        )
    )
    out, stderr = kea.run_client(
        net, {**DAEMON_CFG, "probe_count": 2, "probe_wait": 1.0, "timeout": 30.0}
    )
    assert out["lease"]["address"] == free, stderr
    assert f"{taken} is in use, declining" in stderr
    declines = [p for p in _captured(cap) if p[2] == "4"]
    assert declines and declines[0][4] == taken, _captured(cap)
    log = net.log_text()
    assert "DHCP4_DECLINE_LEASE" in log and taken in log, log[-3000:]
    assert f"lease {free} has been allocated" in log
    addrs = net.client_addrs()
    assert [a["local"] for a in addrs] == [free], addrs
