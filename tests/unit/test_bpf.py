"""mosnet.l2.bpf: instruction bytes, the programs built with it, real sockets.

The kernel checks a program when it is attached, so each of mosnet's filters
is attached once to an AF_UNIX socket (no root, no namespace needed), which
also shows a filter dropping and trimming datagrams. ``test_l2_packet`` has
one at work on frames.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from ipaddress import IPv4Address

import pytest

from mosnet.dhcp4 import sock as dhcp4_sock
from mosnet.l2 import bpf, linkwatch
from mosnet.macnat import ndprelay
from mosnet.proxy import proxyd
from mosnet.uplink import gateway

little_endian = pytest.mark.skipif(sys.byteorder != "little", reason="bytes as on x86/arm64")

# Each program as the five hand-written packers produced it before mosnet.l2.bpf.
PROGRAMS = {
    "probe ARP": (
        gateway.arp_filter(IPv4Address("10.1.2.3")),
        "280000000c000000150000050608000028000000140000001500000302000000"
        "200000001c000000150000010302010a06000000000004000600000000000000",
    ),
    "probe NA": (
        gateway.NA_FILTER,
        "280000000c00000015000005dd8600003000000014000000150000033a000000"
        "3000000036000000150000018800000006000000000004000600000000000000",
    ),
    "DHCPv4": (
        dhcp4_sock._FILTER,
        "300000000000000054000000f000000015000008400000003000000009000000"
        "1500000611000000280000000600000045000400ff3f0000b100000000000000"
        "4800000002000000150000014400000006000000000004000600000000000000",
    ),
    "proxy": (
        proxyd.REQUEST_FILTER,
        "280000000c000000150000020608000028000000140000001500050601000000"
        "15000005dd8600003000000014000000150000033a0000003000000036000000"
        "150000018700000006000000000004000600000000000000",
    ),
    "NDP relay": (
        ndprelay.GUEST_FILTER,
        "280000000c000000150006000608000015000006dd8600003000000014000000"
        "150000043a000000300000003600000015000100870000001500000188000000"
        "06000000000004000600000000000000",
    ),
    "linkwatch": (
        linkwatch.index_filter(0x01020304),
        "2000000014000000150000010102030406000000000004000600000000000000",
    ),
}


@little_endian
def test_instruction_bytes() -> None:
    assert bpf.stmt(bpf.LDH, 12) == bytes.fromhex("28 00 00 00 0c 00 00 00")
    assert bpf.jump(bpf.JEQ, 0x86DD, 1, 2) == bytes.fromhex("15 00 01 02 dd 86 00 00")
    assert bpf.jump(bpf.JSET, 0xFFFFFFFF, 255, 0) == bytes.fromhex("45 00 ff 00 ff ff ff ff")
    assert bpf.ACCEPT == bytes.fromhex("06 00 00 00 00 00 04 00")
    assert bpf.DROP == bytes.fromhex("06 00 00 00 00 00 00 00")
    assert bpf.program(bpf.ACCEPT, bpf.DROP) == bpf.ACCEPT + bpf.DROP


def test_out_of_range_fields_do_not_pack() -> None:
    with pytest.raises(struct.error):
        bpf.jump(bpf.JEQ, 1, 256, 0)
    with pytest.raises(struct.error):
        bpf.stmt(bpf.LD, 1 << 32)


@little_endian
@pytest.mark.parametrize("name", PROGRAMS)
def test_programs_are_as_they_were_hand_packed(name: str) -> None:
    prog, want = PROGRAMS[name]
    assert prog.hex() == want


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_kernel_accepts_every_program(name: str) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        bpf.attach(b, PROGRAMS[name][0])


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setblocking(False)
    return a, b


def _received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(100))
        except BlockingIOError:
            return out


def test_attach_filters_and_trims_then_detach_lets_all_through() -> None:
    a, b = _pair()
    with a, b:
        # first byte 0x42: keep 2 bytes of it; anything else: drop
        keep_two = bpf.program(
            bpf.stmt(bpf.LDB, 0), bpf.jump(bpf.JEQ, 0x42, 0, 1), bpf.stmt(bpf.RET, 2), bpf.DROP
        )
        bpf.attach(b, keep_two)
        for data in (b"\x42abc", b"\x00abc", b"\x42xyz"):
            a.send(data)
        assert _received(b) == [b"\x42a", b"\x42x"]
        bpf.detach(b)
        a.send(b"\x00abc")
        assert _received(b) == [b"\x00abc"]


def test_detach_without_a_filter_is_enoent() -> None:
    a, b = _pair()
    with a, b, pytest.raises(OSError) as caught:
        bpf.detach(b)
    assert caught.value.errno == errno.ENOENT


def test_the_kernel_refuses_a_jump_past_the_end() -> None:
    a, b = _pair()
    with a, b, pytest.raises(OSError) as caught:
        bpf.attach(b, bpf.program(bpf.jump(bpf.JEQ, 1, 5, 0), bpf.DROP))
    assert caught.value.errno == errno.EINVAL


@pytest.mark.parametrize("prog", [b"", b"\0" * 7, bpf.DROP + b"\0", bpf.DROP * 4097])
def test_attach_refuses_what_is_not_whole_instructions(prog: bytes) -> None:
    a, b = _pair()
    with a, b, pytest.raises(ValueError, match="instructions"):
        bpf.attach(b, prog)
