"""mosnet.l2.linkwatch: parsing rtnetlink link notifications and the ifindex filter."""

from __future__ import annotations

import struct

from mosnet.l2 import linkwatch
from mosnet.l2.linkwatch import IFF_LOWER_UP, RTM_DELLINK, RTM_NEWLINK, index_filter, parse

IFF_UP = 0x1


def message(kind: int, index: int, flags: int, attrs: bytes = b"") -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF) + attrs
    length = 16 + len(body)
    return struct.pack("=IHHII", length, kind, 0, 0, 0) + body + b"\0" * (-length % 4)


def test_states_for_our_index_in_order() -> None:
    data = b"".join((
        message(RTM_NEWLINK, 3, IFF_UP | IFF_LOWER_UP),
        message(RTM_NEWLINK, 4, IFF_UP),  # another interface
        message(RTM_NEWLINK, 3, IFF_UP, attrs=b"\x05\0\x21\0\0"),  # an unaligned attribute
        message(RTM_NEWLINK, 3, 0),  # admin down reads as no carrier, as in sysfs
        message(20, 3, IFF_UP | IFF_LOWER_UP),  # RTM_NEWADDR: not a link message
        message(RTM_DELLINK, 3, IFF_UP | IFF_LOWER_UP),
    ))  # fmt: skip
    assert parse(data, 3) == [True, False, False, None]
    assert parse(data, 4) == [False]


def test_truncated_or_garbage_stops_quietly() -> None:
    good = message(RTM_NEWLINK, 3, IFF_UP | IFF_LOWER_UP)
    assert parse(good + good[:20], 3) == [True]
    assert parse(struct.pack("=IHHII", 4, RTM_NEWLINK, 0, 0, 0), 3) == []  # length < header
    assert parse(b"", 3) == [] and parse(b"\xff" * 7, 3) == []
    short = struct.pack("=IHHII", 20, RTM_NEWLINK, 0, 0, 0) + b"\0" * 4  # no room for ifinfomsg
    assert parse(short, 3) == []


def _run_filter(program: bytes, packet: bytes) -> int:
    """Just enough of a classic BPF interpreter for index_filter."""
    ins: list[tuple[int, int, int, int]] = [
        struct.unpack_from("HBBI", program, i) for i in range(0, len(program), 8)
    ]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = ins[pc]
        if code == 0x20:  # ld [k], big-endian like the kernel
            acc = int.from_bytes(packet[k : k + 4], "big")
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x06:
            return k
        pc += 1


def test_index_filter_matches_host_endian_ifindex() -> None:
    prog = index_filter(0x01020304)
    assert _run_filter(prog, message(RTM_NEWLINK, 0x01020304, 0)) > 0
    assert _run_filter(prog, message(RTM_NEWLINK, 0x04030201, 0)) == 0
    assert _run_filter(index_filter(2), message(RTM_DELLINK, 2, 0)) > 0
    assert linkwatch._INDEX_OFFSET == 20
