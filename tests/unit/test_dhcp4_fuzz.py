"""Fuzz: nothing off the wire makes the decoder or the machine raise anything
but DecodeError (LeaseError from ``from_ack``).

Two engines: the seeded mutation loop in bench/fuzz/dhcp4.py runs
MOSNET_FUZZ_CASES cases (default 100_000: decode + accessors + encode
round trip + lease + Machine.on_packet/on_timer each) because plain Python
loops cost ~0.1 ms a case where a hypothesis example costs ~1 ms; hypothesis
adds MOSNET_FUZZ_EXAMPLES examples per property (default 1000) for its
shrinking and different input shapes. ``python -m bench.fuzz.dhcp4 --cases 1000000``
is the bigger run.
"""

from __future__ import annotations

import os
import random
import time
from ipaddress import IPv4Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import dhcp4 as fuzz_dhcp4
from mosnet.dhcp4 import codec, fsm

CASES = int(os.environ.get("MOSNET_FUZZ_CASES", "100000"))
EXAMPLES = int(os.environ.get("MOSNET_FUZZ_EXAMPLES", "1000"))
PER_EXAMPLE = 8
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
MAC = bytes.fromhex("020000000001")
XID = 0x1234

_TEMPLATE_OPTS = {
    1: [b"\xff\xff\xff\0", b"\xff\0\xff\0", b"\0\0\0\0"],
    3: [b"\x0a\x63\0\x01" * 2],
    6: [b"\x0a\x63\0\x35"],
    12: [b"node-1", b"$(reboot)", b"-o"],
    15: [b"lab.example"],
    26: [b"\x05\xdc", b"\x01\x00"],
    51: [b"\0\0\x0e\x10", b"\0\0\0\0"],
    58: [b"\0\0\x07\x08"],
    59: [b"\0\0\x0c\x4e", b"\xff\xff\xff\xff"],
    52: [b"\x01", b"\x03"],
    119: [b"\x03lab\x07example\x00\x02ci\xc0\x04"],
    121: [
        bytes([24, 192, 168, 5, 10, 99, 0, 1, 0, 10, 99, 0, 1]),
        bytes([32, 1, 2, 3, 4, 0, 0, 0, 0]),
    ],
    56: [b"go away"],
}


def build(seed: int, noise: bytes) -> bytes:
    """A valid OFFER/ACK/NAK (random options), then 0-4 mutations from ``seed``.

    Mutating valid packets gets past the cookie and header checks, so the fuzz
    spends its time in option, overload, 119 and 121 parsing and in the machine.
    """
    rnd = random.Random(seed)
    kind = rnd.choice([codec.OFFER, codec.ACK, codec.NAK])
    opts: list[tuple[int, bytes]] = [(53, bytes((kind,)))]
    if rnd.random() < 0.9:
        opts.append((54, rnd.choice([b"\x0a\x63\0\x01", b"\x0a\x63\0\x02"])))
    for code in rnd.sample(sorted(_TEMPLATE_OPTS), rnd.randint(0, 8)):
        opts.append((code, rnd.choice(_TEMPLATE_OPTS[code])))
    yiaddr = IPv4Address(rnd.choice([0, 0x0A63000A, 0x0A63000B]))
    data = bytearray(
        codec.encode(codec.Message(codec.BOOTREPLY, XID, MAC, tuple(opts), yiaddr=yiaddr))
    )
    if rnd.random() < 0.3:  # options in file/sname for overload parsing
        data[108 : 108 + len(noise)] = noise
    for _ in range(rnd.randint(0, 4)):
        pos = rnd.randrange(len(data))
        op = rnd.randrange(4)
        if op == 0:
            data[pos] = rnd.randrange(256)
        elif op == 1:
            del data[pos : pos + rnd.randint(1, 8)]
        elif op == 2:
            data[pos:pos] = noise[:8] or b"\0"
        else:
            data[pos : pos + len(noise)] = noise
    if rnd.random() < 0.1:
        data = data[: rnd.randrange(len(data) + 1)]
    return bytes(data)


seeds = st.integers(0, 2**64)
noises = st.binary(max_size=24)


def _decode(data: bytes) -> codec.Message | None:
    try:
        msg = codec.decode(data)
    except codec.DecodeError:
        return None
    msg.routes()  # accessors must agree with what decode validated
    msg.search()
    msg.addrs(3)
    return msg


@FUZZ
@given(seed=seeds, noise=noises, raw=st.booleans())
def test_decoder_only_raises_decode_error(seed: int, noise: bytes, raw: bool) -> None:
    # several packets per example: hypothesis' own per-example cost dominates otherwise
    for i in range(PER_EXAMPLE):
        _decode(build(seed + i, noise))
    data = noise * (seed % 20) if raw else build(seed, noise)
    _decode(data)
    if seed % 4 == 0:
        frame = bytearray(codec.ip_udp_frame(IPv4Address("10.99.0.1"), codec.ZERO, 67, 68, data))
        frame[: len(noise)] = noise
        try:
            codec.parse_ip_udp(bytes(frame))
        except codec.DecodeError:
            pass


class _Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


@FUZZ
@given(seed=seeds, noise=noises)
def test_machine_survives_any_packet_sequence(seed: int, noise: bytes) -> None:
    clock = _Clock()
    rnd = random.Random(seed)
    m = fsm.Machine(MAC, lambda: XID, clock, rand=rnd.random)
    m.start()
    for step in range(rnd.randint(3, 6)):
        advance = rnd.choice([0.0, 1.0, 5.0, rnd.uniform(0, 5000)])
        msg = _decode(build(seed + step, noise))
        if msg is not None:
            m.on_packet(msg)
            if m.state is fsm.State.BOUND and advance > 4000:
                m.on_conflict()
        clock.t += advance
        m.on_timer()
        deadline = m.next_deadline()
        assert deadline is None or deadline > clock.t - 5000


def test_mutations_still_reach_the_options() -> None:
    """The fuzz is only useful if a good share of mutated packets still decode."""
    decoded = [_decode(build(seed, b"\x0c\x02ab\xff")) for seed in range(2000)]
    ok = [m for m in decoded if m is not None]
    assert len(ok) > 400
    assert any(m.opt(121) for m in ok) and any(m.opt(119) for m in ok)


def test_mutation_fuzz_100k_cases(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    stats = fuzz_dhcp4.run(CASES, seed=int(os.environ.get("MOSNET_FUZZ_SEED", "1")))
    took = time.monotonic() - start
    with capsys.disabled():
        print(
            f"\ndhcp4 mutation fuzz: {stats.cases} cases in {took:.1f} s "
            f"(decoded {stats.decoded}, leases {stats.leases}, binds {stats.binds})"
        )
    assert stats.cases == CASES
    # the mutations must leave enough packets intact to reach options, leases
    # and every machine state, or the fuzz would only test the header checks
    assert stats.decoded > CASES // 10 and stats.leases > CASES // 100
    assert stats.binds > 0 and {"BOUND", "RENEWING", "REBINDING"} <= set(stats.states)
