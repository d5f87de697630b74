"""mosnet.l2.packet: a filtered packet socket on ``lo``, checksum status, closing.

``lo`` of the test's own namespace: root, but no namespace of its own. The
frames use a local experimental ethertype and a nonce, so nothing else on
``lo`` (other tests meanwhile) can match the filter.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time

import pytest

from mosnet.l2 import bpf, packet

ETHERTYPE = 0x88B5  # IEEE 802 local experimental


def _auxdata(status: int) -> tuple[int, int, bytes]:
    """struct tpacket_auxdata of a 60-byte frame with ``status``."""
    value = struct.pack("IIIHHHH", status, 60, 60, 14, 0, 0, 0)
    return (packet.SOL_PACKET, packet.PACKET_AUXDATA, value)


def test_checksum_ready_reads_tp_status() -> None:
    assert packet.checksum_ready([])
    assert packet.checksum_ready([_auxdata(0)])
    assert not packet.checksum_ready([_auxdata(packet.TP_STATUS_CSUMNOTREADY | 1)])
    assert packet.checksum_ready([(packet.SOL_PACKET, packet.PACKET_AUXDATA, b"\xff" * 4)])
    assert packet.checksum_ready([(0, packet.PACKET_AUXDATA, _auxdata(8)[2])])


def _drain(sock: socket.socket) -> list[tuple[bytes, int]]:
    """(frame, sll_pkttype) of every queued frame."""
    out: list[tuple[bytes, int]] = []
    while True:
        try:
            data, anc, _, addr = sock.recvmsg(2048, packet.AUXDATA_SPACE)
        except BlockingIOError:
            return out
        assert packet.checksum_ready(anc)
        out.append((data, addr[2]))


@pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET needs CAP_NET_RAW")
def test_a_packet_socket_on_lo_sees_only_what_its_program_keeps() -> None:
    nonce = int.from_bytes(os.urandom(4), "big")
    keep = bpf.program(
        bpf.stmt(bpf.LDH, 12),
        bpf.jump(bpf.JEQ, ETHERTYPE, 0, 3),
        bpf.stmt(bpf.LD, 14),
        bpf.jump(bpf.JEQ, nonce, 0, 1),
        bpf.ACCEPT,
        bpf.DROP,
    )
    head = b"\0" * 12 + ETHERTYPE.to_bytes(2, "big")
    wanted = head + nonce.to_bytes(4, "big") + b"wanted".ljust(46, b".")
    other = head + (nonce ^ 1).to_bytes(4, "big") + b"other".ljust(46, b".")
    listen = packet.packet_socket("lo", ETHERTYPE, keep)
    send = packet.send_socket()
    try:
        assert listen.getblocking() is False
        for frame in (other, wanted, other):
            send.sendto(frame, ("lo", ETHERTYPE))
        select.select([listen], [], [], 1.0)
        time.sleep(0.05)  # the looped-back copy follows the outgoing one
        got = _drain(listen)
    finally:
        packet.close_later([listen, send])
    assert got and all(frame == wanted for frame, _ in got)
    assert {kind for _, kind in got} <= {socket.PACKET_HOST, packet.PACKET_OUTGOING}


@pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET needs CAP_NET_RAW")
def test_a_refused_program_closes_the_socket() -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError):
        packet.packet_socket("lo", ETHERTYPE, bpf.program(bpf.jump(bpf.JEQ, 1, 9, 9)))
    assert set(os.listdir("/proc/self/fd")) <= before


def test_close_later_closes_in_the_background() -> None:
    a, b = socket.socketpair()
    packet.close_later([a, b])
    end = time.monotonic() + 2.0
    while (a.fileno() != -1 or b.fileno() != -1) and time.monotonic() < end:
        time.sleep(0.01)
    assert a.fileno() == -1 and b.fileno() == -1
