"""Seeded mutation fuzz of the DHCPv4 decoder, lease builder and state machine.

Starts from valid OFFER/ACK/NAK packets built by the codec (plus hand-built
option-overload ones), applies random byte/bit flips, truncations, inserted and
deleted runs, option-length corruption, option 52 overload, 121/119 corruption
and NUL-laden names, and feeds every result to ``codec.decode``, the message
accessors, ``lease.from_ack`` and a set of live ``fsm.Machine`` instances.
Allowed outcomes: DecodeError from the decoder, LeaseError from ``from_ack``;
anything else is a bug. A decoded message must also round-trip through
``encode``. tests/unit/test_dhcp4_fuzz.py runs this for >=100k cases in CI;
this script runs as many as you ask for and prints cases/s.

usage: .venv/bin/python bench/fuzz/dhcp4.py [--cases 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from mosnet.dhcp4 import codec, fsm  # noqa: E402
from mosnet.dhcp4.lease import LeaseError, from_ack  # noqa: E402

MAC = bytes.fromhex("020000000001")
XID = 0x1234ABCD
SERVERS = (b"\x0a\x63\x00\x01", b"\x0a\x63\x00\x02")
OPTIONS_AT = 240  # 236-byte BOOTP header + cookie

_VALUES: dict[int, list[bytes]] = {
    1: [b"\xff\xff\xff\x00", b"\xff\xff\xff\xff", b"\xff\x00\xff\x00", b"\x00\x00\x00\x00"],
    3: [b"\x0a\x63\x00\x01", b"\x0a\x5e\x07\x01\x0a\x63\x00\x01"],
    6: [b"\x0a\x63\x00\x35", b"\x01\x01\x01\x01" * 3],
    12: [b"node-1", b"$(reboot)", b"-o", b"a\nb", b"host\x00", b"\x00evil", b"x" * 300],
    15: [b"lab.example", b"lab.example.", b"bad_domain", b"a..b", b"\x00"],
    26: [b"\x05\xdc", b"\x01\x00", b"\xff\xff"],
    28: [b"\x0a\x63\x00\xff"],
    42: [b"\x0a\x63\x00\x7b"],
    51: [b"\x00\x00\x0e\x10", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x01"],
    58: [b"\x00\x00\x07\x08", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"],
    59: [b"\x00\x00\x0c\x4e", b"\x00\x00\x00\x01", b"\xff\xff\xff\xff"],
    56: [b"go away", b"nul\x00inside", b""],
    119: [
        b"\x03lab\x07example\x00\x02ci\xc0\x04",
        b"\x01a\x00\xc0\x00",
        b"\x03lab\x07example\x00" * 20,
    ],
    121: [
        bytes([24, 192, 168, 5, 10, 99, 0, 1, 0, 10, 99, 0, 1]),
        bytes([32, 1, 2, 3, 4, 0, 0, 0, 0]),
        bytes([16, 10, 250, 10, 94, 7, 1]) * 6,
        bytes([0, 10, 94, 7, 1]),
    ],
}


def _templates(rnd: random.Random, count: int) -> list[bytes]:
    """Valid replies with random option sets; some long (RFC 3396 split), some
    with options overloaded into file/sname (option 52)."""
    out: list[bytes] = []
    codes = sorted(_VALUES)
    for i in range(count):
        kind = (codec.OFFER, codec.ACK, codec.NAK)[i % 3]
        opts: list[tuple[int, bytes]] = [(53, bytes((kind,)))]
        if rnd.random() < 0.95:
            opts.append((54, rnd.choice(SERVERS)))
        for code in rnd.sample(codes, rnd.randint(0, len(codes))):
            opts.append((code, rnd.choice(_VALUES[code])))
        yiaddr = IPv4Address(rnd.choice([0x0A63000A, 0x0A63000A, 0x0A63000B, 0]))
        msg = codec.Message(codec.BOOTREPLY, XID, MAC, tuple(opts), yiaddr=yiaddr)
        data = bytearray(codec.encode(msg))
        if i % 5 == 4:
            data = _overload(rnd, data)
        out.append(bytes(data))
    return out


def _overload(rnd: random.Random, data: bytearray) -> bytearray:
    """Move some options into file (108..236) and/or sname (44..108)."""
    which = rnd.choice((1, 2, 3))
    body = bytearray(data[:OPTIONS_AT]) + bytes((52, 1, which))
    body += data[OPTIONS_AT:]
    extra = bytes((12, 4)) + b"file" + bytes((121, 5, 0, 10, 94, 7, 1, 255))
    if which & 1:
        body[108 : 108 + len(extra)] = extra
    if which & 2:
        body[44 : 44 + 9] = bytes((15, 6)) + b"sname." + b"\xff"
    return body


def _option_offsets(data: bytes | bytearray) -> list[int]:
    """Offsets of option codes in the main options area (stops at a bad length)."""
    offs, i = [], OPTIONS_AT
    while i + 1 < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        offs.append(i)
        i += 2 + data[i + 1]
    return offs


def mutate(rnd: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rnd.choice((0, 1, 1, 1, 2, 2, 3, 4, 6))):
        op = rnd.randrange(12)
        n = len(data)
        if n == 0:
            break
        pos = rnd.randrange(n)
        offs = _option_offsets(data)
        if op == 0:
            data[pos] = rnd.randrange(256)
        elif op == 1:
            data[pos] ^= 1 << rnd.randrange(8)
        elif op == 2:
            del data[pos : pos + rnd.randint(1, 16)]
        elif op == 3:
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif op == 4:  # truncate anywhere
            del data[rnd.randrange(n + 1) :]
        elif op == 5 and offs:  # option length off by a little or a lot
            at = rnd.choice(offs) + 1
            if at < n:
                data[at] = rnd.choice((0, 1, 3, 5, 255, (data[at] + rnd.choice((-1, 1))) & 255))
        elif op == 6 and offs:  # change an option code (wrong fixed lengths)
            data[rnd.choice(offs)] = rnd.choice((1, 3, 26, 51, 52, 53, 54, 58, 119, 121, 255))
        elif op == 7:  # option 52 with any value, junk or options in file/sname
            data[OPTIONS_AT:OPTIONS_AT] = bytes(
                (52, rnd.choice((1, 1, 2)), rnd.randrange(5), rnd.randrange(5))
            )
            start = rnd.choice((44, 108))
            junk = rnd.randbytes(rnd.randint(1, 40))
            data[start : start + len(junk)] = junk
        elif op == 8:  # an arbitrary 121 route list (bad widths, truncation)
            raw = bytes(
                rnd.choice((0, 8, 16, 24, 32, 33, 255)) if j % 5 == 0 else rnd.randrange(256)
                for j in range(rnd.randint(0, 23))
            )
            data[OPTIONS_AT:OPTIONS_AT] = bytes((121, len(raw))) + raw
        elif op == 9:  # 119 with pointers anywhere, labels of any length
            raw = bytes(
                rnd.choice((0, 1, 3, 63, 64, 0xC0, 0xC1, 0xFF))
                if j % 3 == 0
                else rnd.randrange(256)
                for j in range(rnd.randint(0, 30))
            )
            data[OPTIONS_AT:OPTIONS_AT] = bytes((119, len(raw))) + raw
        elif op == 10:  # NULs in names and messages
            name = rnd.choice((12, 15, 56))
            raw = bytes(rnd.choice((0, 0, 45, 46, 97, 10, 36)) for _ in range(rnd.randint(0, 9)))
            data[OPTIONS_AT:OPTIONS_AT] = bytes((name, len(raw))) + raw
        elif op == 11 and offs:  # split an option in two (RFC 3396 concatenation)
            at = rnd.choice(offs)
            if at + 1 < n and data[at + 1] >= 2 and at + 2 + data[at + 1] <= n:
                length, half = data[at + 1], data[at + 1] // 2
                code = data[at]
                data[at : at + 2 + length] = (
                    bytes((code, half))
                    + data[at + 2 : at + 2 + half]
                    + bytes((code, length - half))
                    + data[at + 2 + half : at + 2 + length]
                )
    return bytes(data)


@dataclass
class Stats:
    cases: int = 0
    decoded: int = 0
    leases: int = 0
    frames: int = 0
    binds: int = 0
    states: dict[str, int] = field(default_factory=dict)


class _Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


def _check_message(msg: codec.Message, stats: Stats) -> None:
    # accessors must agree with what decode validated
    msg.routes()
    msg.search()
    for code in (3, 6, 42):
        msg.addrs(code)
    for code in (12, 15, 56):
        msg.text(code)
    msg.u32(51)
    _ = msg.server_id, msg.msg_type
    again = codec.decode(codec.encode(msg))
    if again != msg:
        raise AssertionError(f"round trip changed the message: {msg} -> {again}")
    try:
        lease = from_ack(msg, 1000.0)
    except LeaseError:
        return
    stats.leases += 1
    if not 0 < lease.t1 < lease.t2 < lease.lease_time or not 0 <= lease.prefixlen <= 32:
        raise AssertionError(f"bad lease times/prefix: {lease}")
    if from_ack(again, 1000.0) != lease:
        raise AssertionError("lease changed across an encode/decode round trip")
    lease.to_json()


def run(cases: int, seed: int = 1) -> Stats:
    """Run ``cases`` mutated packets; raise on anything but the allowed errors."""
    rnd = random.Random(seed)
    corpus = _templates(rnd, 300)
    stats = Stats()
    clock = _Clock()
    machines = [
        fsm.Machine(MAC, lambda: XID, clock, fsm.Config(min_retransmit=1.0), rand=rnd.random)
        for _ in range(8)
    ]
    for m in machines:
        m.start()
    for i in range(cases):
        data = mutate(rnd, rnd.choice(corpus))
        if i % 16 == 0:  # the IPv4/UDP layer in front of it
            frame = bytearray(
                codec.ip_udp_frame(IPv4Address("10.99.0.1"), codec.ZERO, 67, 68, data)
            )
            for _ in range(rnd.randint(0, 2)):
                frame[rnd.randrange(len(frame))] = rnd.randrange(256)
            try:
                codec.parse_ip_udp(bytes(frame), check_udp=rnd.random() < 0.5)
                stats.frames += 1
            except codec.DecodeError:
                pass
        try:
            msg = codec.decode(data)
        except codec.DecodeError:
            msg = None
        if msg is not None:
            stats.decoded += 1
            _check_message(msg, stats)
        m = machines[i % len(machines)]
        _step(m, msg, clock, rnd, stats)
        stats.cases += 1
    return stats


def _step(
    m: fsm.Machine, msg: codec.Message | None, clock: _Clock, rnd: random.Random, stats: Stats
) -> None:
    if msg is not None:
        fx = m.on_packet(msg)
        stats.binds += sum(isinstance(e, fsm.Bind) for e in fx)
    r = rnd.random()
    if r < 0.3:
        clock.t += rnd.choice((0.0, 0.5, 3.0, 30.0, rnd.uniform(0, 8000)))
        m.on_timer()
    elif r < 0.31:
        m.on_conflict()
    elif r < 0.315:
        m.release()
        m.start()
    deadline = m.next_deadline()
    if m.state is not fsm.State.INIT and deadline is None:
        raise AssertionError(f"{m.state} without a deadline: the client would hang")
    if m.state is fsm.State.INIT and deadline is None:
        m.start()  # released: a real client would start over too
    stats.states[m.state.value] = stats.states.get(m.state.value, 0) + 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    start = time.monotonic()
    stats = run(args.cases, args.seed)
    took = time.monotonic() - start
    print(
        f"{stats.cases} cases in {took:.1f} s = {stats.cases / took:,.0f} cases/s "
        f"(decoded {stats.decoded}, leases {stats.leases}, binds {stats.binds}, "
        f"ip/udp frames ok {stats.frames}, machine states {stats.states})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
