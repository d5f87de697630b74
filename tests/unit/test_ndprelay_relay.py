"""The NDP relay: ``guest_port`` on a fake sysfs, ``Relay.handle``, the guest BPF filter."""

from __future__ import annotations

import os
import pathlib
import socket
import struct
from typing import cast

import pytest

from mosnet.l2 import frames, nd
from mosnet.macnat import guests, ndprelay
from mosnet.macnat.ndprelay import Relay, guest_port, rewrite
from tests.unit.helpers.ndp_frames import (
    GUEST,
    GUEST4,
    GUEST6,
    GUEST_LL,
    GW4,
    GW6,
    HOST6,
    NAT,
    PROVIDER,
    _ipv6_frame,
    decoded,
    na,
    ns,
)


class Clock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeSocket:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.fail = fail

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.fail:
            raise OSError(100, "Network is down")
        self.sent.append((data, addr))
        return len(data)


def as_socket(fake: FakeSocket) -> socket.socket:
    """The relay only sends on the socket it is given: the fake does that much."""
    return cast(socket.socket, fake)


# --- guest_port ---------------------------------------------------------------------


@pytest.fixture
def sysfs(tmp_path: pathlib.Path) -> str:
    root = tmp_path / "class_net"
    devices = tmp_path / "devices"
    for name in ("br-mosnet", "docker0", "c0", "c1", "up0", "lo", "d0"):
        (devices / name).mkdir(parents=True)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(devices / name, root / name)
    for port, master in (("c0", "br-mosnet"), ("up0", "br-mosnet"), ("d0", "docker0")):
        os.symlink(f"../{master}", devices / port / "master")  # sysfs-style, relative
    os.symlink(devices / "br-mosnet", devices / "c1" / "master")  # absolute works too
    return str(root)


@pytest.mark.parametrize(
    ("ifname", "want"),
    [
        ("c0", True),
        ("c1", True),
        ("up0", False),
        ("d0", False),
        ("lo", False),
        ("br-mosnet", False),
        ("gone", False),
    ],
)
def test_guest_port(sysfs: str, ifname: str, want: bool) -> None:
    assert guest_port(ifname, "up0", sysfs) is want


def test_guest_port_another_uplink(sysfs: str) -> None:
    assert guest_port("up0", "eth9", sysfs) is True
    assert guest_port("c0", "c0", sysfs) is False


# --- Relay.handle -------------------------------------------------------------------


@pytest.fixture
def fake_ports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def fake(ifname: str, uplink: str, sysfs: str = "") -> bool:
        asked.append(ifname)
        return ifname in ("c0", "c1") and ifname != uplink

    monkeypatch.setattr(ndprelay, "guest_port", fake)
    return asked


def relay(clock: Clock | None = None) -> Relay:
    reserved: frozenset[guests.IpAddress] = frozenset({GW6, GW4, HOST6})
    clock = clock or Clock()
    return Relay("up0", NAT, guests.GuestTable(reserved, clock, timeout=300.0), clock)


def test_a_guest_ns_is_relayed_rewritten_and_its_source_learned(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    frame = ns()
    r.handle(frame, "c0", as_socket(out))
    assert out.sent == [(rewrite(frame, NAT), ("up0", frames.ETH_P_IPV6))]
    assert r.relayed == 1
    binding = r.table.get(GUEST_LL)
    assert binding is not None and binding.mac == GUEST


def test_a_guest_na_is_relayed_and_its_target_learned(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(na(), "c1", as_socket(out))
    (sent, addr) = out.sent[0]
    assert addr == ("up0", frames.ETH_P_IPV6)
    _, _, msg = decoded(sent)
    assert isinstance(msg, nd.NeighborAdvertisement) and msg.tllao == NAT
    assert GUEST6 in r.table


def test_a_guest_arp_is_learned_not_relayed(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(frames.arp_request(GUEST, GUEST4, GW4).frame(), "c0", as_socket(out))
    assert out.sent == [] and GUEST4 in r.table and r.relayed == 0


def test_a_guest_dad_ns_is_relayed_but_teaches_nothing(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(ns(src=nd.UNSPECIFIED6, target=GUEST6), "c0", as_socket(out))
    assert len(out.sent) == 1 and len(r.table) == 0


def test_reserved_addresses_are_relayed_but_not_learned(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(na().replace(GUEST6.packed, HOST6.packed), "c0", as_socket(out))
    assert HOST6 not in r.table and GUEST6 not in r.table


@pytest.mark.parametrize("ifname", ["up0", "br-mosnet", "d0", "lo"])
def test_frames_from_other_interfaces_are_ignored(fake_ports: list[str], ifname: str) -> None:
    r, out = relay(), FakeSocket()
    r.handle(ns(), ifname, as_socket(out))
    r.handle(frames.arp_request(GUEST, GUEST4, GW4).frame(), ifname, as_socket(out))
    assert out.sent == [] and len(r.table) == 0


def test_frames_from_the_nat_mac_are_ignored(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(ns(mac=NAT), "c0", as_socket(out))
    assert out.sent == [] and len(r.table) == 0
    assert fake_ports == []  # not even asked


def test_non_ndp_ipv6_is_not_relayed(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(_ipv6_frame(b"\0" * 8, next_header=17), "c0", as_socket(out))
    assert out.sent == []


def test_the_token_bucket_caps_the_relay(
    fake_ports: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ndprelay, "RELAY_RATE", 2.0)
    monkeypatch.setattr(ndprelay, "RELAY_BURST", 3.0)
    clock = Clock()
    r, out = relay(clock), FakeSocket()
    for _ in range(10):
        r.handle(ns(), "c0", as_socket(out))
    assert len(out.sent) == 3 and r.relayed == 3
    clock.t += 1.0
    for _ in range(10):
        r.handle(ns(), "c0", as_socket(out))
    assert len(out.sent) == 5
    r.handle(frames.arp_request(GUEST, GUEST4, GW4).frame(), "c0", as_socket(out))
    assert GUEST4 in r.table  # learning goes on when the bucket is empty


def test_a_failing_send_is_swallowed(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket(fail=True)
    r.handle(ns(), "c0", as_socket(out))
    assert r.relayed == 0 and GUEST_LL in r.table


def test_port_verdicts_are_cached_for_a_few_seconds(fake_ports: list[str]) -> None:
    clock = Clock()
    r, out = relay(clock), FakeSocket()
    for _ in range(3):
        r.handle(ns(), "c0", as_socket(out))
    assert fake_ports == ["c0"]
    clock.t += 6.0
    r.handle(ns(), "c0", as_socket(out))
    assert fake_ports == ["c0", "c0"]


def run_bpf(prog: bytes, frame: bytes) -> int:
    """A classic BPF interpreter for the four opcodes GUEST_FILTER uses."""
    insns = [struct.unpack_from("HBBI", prog, i) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x06:  # ret k
            return int(k)
        if code in (0x28, 0x30):  # ldh / ldb [k]; out of range: the kernel drops
            size = 2 if code == 0x28 else 1
            if k + size > len(frame):
                return 0
            acc = int.from_bytes(frame[k : k + size])
        elif code == 0x15:  # jeq #k
            pc += jt if acc == k else jf
        else:
            raise AssertionError(f"opcode {code:#x}")
        pc += 1


@pytest.mark.parametrize(
    ("frame", "kept"),
    [
        (ns(), True),
        (na(), True),
        (ns(src=nd.UNSPECIFIED6, target=GUEST6), True),
        (frames.arp_request(GUEST, GUEST4, GW4).frame(), True),
        (_ipv6_frame(bytes((133, 0, 0, 0)) + b"\0" * 12), False),
        (_ipv6_frame(bytes((128, 0, 0, 0)) + b"\0" * 4), False),
        (_ipv6_frame(b"\0" * 8, next_header=17), False),
        (frames.Ethernet(PROVIDER, GUEST, frames.ETH_P_IP, b"\x45" + b"\0" * 45).encode(), False),
        (b"\x02" * 13, False),
    ],
)
def test_the_guest_filter_keeps_arp_ns_and_na_only(frame: bytes, kept: bool) -> None:
    assert (run_bpf(ndprelay.GUEST_FILTER, frame) > 0) is kept
