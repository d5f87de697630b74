"""mosnet.ovs.openflow: hand-written cases and random input (hypothesis)."""

from __future__ import annotations

import dataclasses
import os
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.ovs import openflow as of
from tests.unit.helpers.of_openflow import MAC, MCAST, NAT, arp_frame

EXAMPLES = int(os.environ.get("MOSNET_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


# --- hand-written cases -------------------------------------------------------------


def test_flow_mod_layout_without_actions() -> None:
    msg = of.flow_mod(1, match=of.Match(in_port=2), priority=3)
    assert len(msg) == 48 + 16 and msg[48:] == bytes.fromhex("0001000c80000004000000020000 0000")
    assert of.parse_header(msg) == of.Header(4, of.OFPT_FLOW_MOD, 64, 1)


BAD_MATCHES = [
    of.Match(arp_tpa=IPv4Address("10.0.0.5")),
    of.Match(eth_type=0x0800, arp_op=1),
    of.Match(ipv4_dst=IPv4Address("10.0.0.5"), eth_type=0x86DD),
    of.Match(ip_proto=6),
    of.Match(eth_type=0x0806, ip_proto=6),
    of.Match(ipv6_src=IPv6Address("::1")),
    of.Match(eth_type=0x86DD, icmpv6_type=135),
    of.Match(eth_type=0x0800, ip_proto=58, icmpv6_type=135),
    of.Match(eth_type=0x86DD, ip_proto=58, nd_target=IPv6Address("fe80::1")),
    of.Match(eth_type=0x86DD, ip_proto=58, icmpv6_type=128, nd_target=IPv6Address("fe80::1")),
    of.Match(eth_type=0x86DD, ip_proto=58, icmpv6_type=135, icmpv6_code=1,
             nd_target=IPv6Address("fe80::1")),
    of.Match(eth_dst_mask=MCAST),
    of.Match(eth_dst=MAC, eth_dst_mask=MCAST),  # 52:… has bits outside 01:00:…
    of.Match(eth_dst=MAC[:5]),
    of.Match(eth_src=cast(Any, bytearray(MAC))),  # cast(Any, x): a wrong type on purpose
    of.Match(in_port=True),
    of.Match(in_port=-1),
    of.Match(in_port=0xFF00),
    of.Match(eth_type=0x10000),
    of.Match(eth_type=0x0806, arp_op=256),
    of.Match(eth_type=0x0800, ipv4_dst=cast(Any, "10.0.0.1")),
    of.Match(eth_type=0x86DD, ipv6_dst=cast(Any, IPv4Address("10.0.0.1"))),
]  # fmt: skip


@pytest.mark.parametrize("match", BAD_MATCHES)
def test_match_check_rejects(match: of.Match) -> None:
    with pytest.raises(of.OfError):
        match.check()
    with pytest.raises(of.OfError):
        of.flow_mod(1, match=match)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"actions": [of.SetField("arp_sha", NAT)]}, "arp_sha needs a match on eth_type 0x0806"),
        ({"actions": [of.SetField("nd_sll", NAT)]}, "nd_sll needs"),
        ({"actions": [of.SetField("ipv4_dst", NAT)]}, "cannot set"),
        ({"actions": [of.SetField("eth_dst", NAT[:5])]}, "eth_dst: bad value"),
        ({"actions": [of.Output(0)]}, "bad port"),
        ({"actions": [of.Output(of.OFPP_ANY)]}, "bad port"),
        ({"actions": [of.Output(0xFF00)]}, "bad port"),
        ({"actions": [of.Output(1, max_len=0x10000)]}, "out of range"),
        ({"command": 5}, "unknown command"),
        ({"priority": 0x10000}, "out of range"),
        ({"cookie": -1}, "out of range"),
        ({"idle_timeout": 1 << 16}, "out of range"),
    ],
)
def test_flow_mod_rejects(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(of.OfError, match=error):
        of.flow_mod(1, match=of.Match(in_port=1), **kwargs)


def test_set_field_prerequisites_accepted() -> None:
    na = of.Match(eth_type=0x86DD, ip_proto=58, icmpv6_type=136)
    of.flow_mod(1, match=na, actions=[of.SetField("nd_tll", NAT)])
    with pytest.raises(of.OfError, match="nd_tll"):
        of.flow_mod(1, match=dataclasses.replace(na, icmpv6_code=1),
                    actions=[of.SetField("nd_tll", NAT)])  # fmt: skip
    # packet-out: OVS checks against the packet, so do we not
    of.packet_out(1, in_port=of.OFPP_CONTROLLER, actions=[of.SetField("arp_tha", NAT)], data=b"")


@pytest.mark.parametrize("port", [0xFF00, 0xFFFFFFF0, -1, of.OFPP_IN_PORT])
def test_packet_out_rejects_in_port(port: int) -> None:
    with pytest.raises(of.OfError, match="in_port"):
        of.packet_out(1, in_port=port, actions=[], data=b"")


def test_message_too_long_and_bad_xid() -> None:
    with pytest.raises(of.OfError):
        of.echo_request(1, b"\0" * 0xFFF8)
    with pytest.raises(of.OfError):
        of.barrier_request(1 << 32)


def test_hello_versions() -> None:
    assert of.decode(of.hello(7)) == of.HelloMsg(4, frozenset({4}))
    assert of.decode(bytes.fromhex("06000008000000aa")) == of.HelloMsg(6, frozenset({6}))
    unknown_then_two_words = bytes.fromhex(
        "0600001c00000001 00020005aabbccdd 0001000c0000001200000001"
    )
    assert of.decode(unknown_then_two_words) == of.HelloMsg(6, frozenset({1, 4, 32}))
    for bad in ("060000100000000100010003000000ff", "060000100000000100010010000000ff"):
        with pytest.raises(of.OfError, match="hello"):
            of.decode(bytes.fromhex(bad))


def test_decode_other_types_and_errors() -> None:
    assert of.decode(bytes.fromhex("0415000800000005")) == of.Header(4, of.OFPT_BARRIER_REPLY, 8, 5)
    features = bytes.fromhex("0406002000000001") + bytes(24)
    assert of.decode(features) == of.Header(4, of.OFPT_FEATURES_REPLY, 32, 1)
    for bad, why in [
        ("0415000900000005", "length 9, message 8"),
        ("04150007000000050000", "length 7"),
        ("0415", "header: 2 bytes at 0, need 8"),
        ("010a000800000000", "version 0x1, not 1.3"),
        ("040a000800000000", "packet-in"),
        ("0401000a000000000001", "error"),
    ]:
        with pytest.raises(of.OfError, match=why):
            of.decode(bytes.fromhex(bad))


PACKET_IN_HEAD = bytes.fromhex("040a0000 00000001 ffffffff 003c 00 00 0000000000000000")


def packet_in(match_hex: str, tail: bytes = b"\0\0") -> bytes:
    body = PACKET_IN_HEAD + bytes.fromhex(match_hex) + tail
    return body[:2] + struct.pack("!H", len(body)) + body[4:]


@pytest.mark.parametrize(
    ("match_hex", "why"),
    [
        ("00010010 80001908 0a000001 ffffff00", "bad or repeated ipv4_dst"),  # masked
        ("00010012 8000000a 00000001000000000000 000000000000", "bad or repeated in_port"),
        ("00010014 80000004 00000001 80000004 00000002 00000000", "repeated in_port"),
        ("0001000c 80000008 00000001 00000000", "overruns"),
        ("00010006 8000", "2 bytes at 28, need 4"),
        ("00000008 00000000", "match: type 0"),
        ("00010003 00000000", "length 3"),
        ("00010010 80000004 00000001", "length 16"),  # padding past the message
    ],
)
def test_match_decode_rejects(match_hex: str, why: str) -> None:
    with pytest.raises(of.OfError, match=why):
        of.decode(packet_in(match_hex))


def test_match_decode_skips_unknown_and_keeps_offset() -> None:
    # experimenter class (ONF), an NXM class (reg0), OXM metadata: all skipped
    known = "80000004 00000007"
    fields = "ffff0c08 4f4e4600 00000001" + "00010004 00000005" + "80000408 0000000000000009"
    length = 4 + len(bytes.fromhex(fields + known))
    match_hex = f"0001{length:04x}" + fields + known
    match_hex += "00" * (-length % 8)
    msg = packet_in(match_hex, b"\0\0frame")
    got = of.decode(msg)
    assert isinstance(got, of.PacketIn) and got.match == of.Match(in_port=7)
    assert got.data == b"frame"
    after = 4 + len(bytes.fromhex(match_hex))
    assert of.Match.decode(b"junk" + bytes.fromhex(match_hex), 4) == (of.Match(in_port=7), after)
    with pytest.raises(of.OfError, match="at -1"):
        of.Match.decode(bytes.fromhex(match_hex), -1)
    with pytest.raises(of.OfError, match="padding after the match"):
        of.decode(packet_in(match_hex, b""))


def test_split_messages() -> None:
    stream = of.hello(1) + of.echo_request(2, b"x" * 100) + of.barrier_request(3)
    buf = bytearray()
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        buf += stream[i : i + 7]
        got += of.split_messages(buf)
    assert got == [of.hello(1), of.echo_request(2, b"x" * 100), of.barrier_request(3)]
    assert buf == bytearray()
    buf = bytearray(of.hello(1) + bytes.fromhex("0400"))
    assert of.split_messages(buf) == [of.hello(1)] and buf == bytearray(b"\x04\x00")
    buf = bytearray(of.hello(1) + bytes.fromhex("04000004"))
    with pytest.raises(of.OfError, match="length 4"):
        of.split_messages(buf)


# --- hypothesis -----------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6)
v4 = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
v6 = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
u8 = st.integers(0, 255)
FAMILIES: dict[str, dict[str, Any]] = {
    "none": {},
    "other": {"eth_type": st.integers(0, 0xFFFF)},
    "ip4": {"eth_type": st.just(0x0800), "ip_proto": u8, "ipv4_dst": v4},
    "arp": {"eth_type": st.just(0x0806), "arp_op": u8, "arp_spa": v4, "arp_tpa": v4},
    "ip6": {"eth_type": st.just(0x86DD), "ip_proto": u8, "ipv6_src": v6, "ipv6_dst": v6},
    "icmp6": {"eth_type": st.just(0x86DD), "ip_proto": st.just(58), "ipv6_src": v6,
              "icmpv6_type": u8, "icmpv6_code": u8},
    "nd": {"eth_type": st.just(0x86DD), "ip_proto": st.just(58),
           "icmpv6_type": st.sampled_from([135, 136]), "icmpv6_code": st.just(0),
           "nd_target": v6},
}  # fmt: skip
REQUIRED = {"eth_type", "ip_proto", "icmpv6_type"}  # for the family to make sense


@st.composite
def valid_matches(draw: st.DrawFn) -> of.Match:
    family = FAMILIES[draw(st.sampled_from(sorted(FAMILIES)))]
    values = {
        name: draw(strategy if name in REQUIRED else st.none() | strategy)
        for name, strategy in family.items()
    }
    port = st.integers(0, 0xFEFF) | st.integers(of.OFPP_MAX, of.OFPP_ANY)
    values.update(in_port=draw(st.none() | port), eth_src=draw(st.none() | macs))
    dst = draw(st.none() | macs)
    if dst is not None and draw(st.booleans()):
        mask = draw(macs)
        values["eth_dst_mask"] = mask
        dst = bytes(a & b for a, b in zip(dst, mask, strict=True))
    return of.Match(eth_dst=dst, **values)


@FUZZ
@given(valid_matches(), st.binary(max_size=9))
def test_match_round_trip(match: of.Match, before: bytes) -> None:
    encoded = match.encode()
    assert len(encoded) % 8 == 0
    assert of.Match.decode(before + encoded + b"tail", len(before)) == (
        match, len(before) + len(encoded))  # fmt: skip


def _decode_only_oferror(data: bytes) -> None:
    try:
        of.decode(data)
    except of.OfError:
        pass
    try:
        of.Match.decode(data, 0)
    except of.OfError:
        pass


@FUZZ
@given(st.binary(max_size=120))
def test_decode_random_bytes(data: bytes) -> None:
    _decode_only_oferror(data)


@FUZZ
@given(st.sampled_from([0, 1, 10, 11, 14]), st.sampled_from([1, 4, 6]), st.binary(max_size=120))
def test_decode_random_bodies(msg_type: int, version: int, body: bytes) -> None:
    _decode_only_oferror(struct.pack("!BBHI", version, msg_type, 8 + len(body), 1) + body)


VALID = [
    packet_in("0001000c 80000004 00000007 00000000", arp_frame()[:10]),
    of.flow_mod(1, match=of.Match(in_port=1, eth_dst=MCAST, eth_dst_mask=MCAST)),
    bytes.fromhex("0600001c00000001" "00020005aabbccdd" "0001000c0000001200000001"),
    bytes.fromhex("040b0048000000000000000000000005" "00c80000000000000000000000012c00")
    + bytes(16) + bytes.fromhex("000100148000000400000001800018040a00000900000000"),
]  # fmt: skip


@FUZZ
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 120), u8), max_size=4),
       st.integers(0, 130))  # fmt: skip
def test_decode_mutated_messages(msg: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(msg)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    data = data[:cut]
    if len(data) >= 4 and edits and edits[0][1] & 1:  # keep the header's length right, often
        data[2:4] = struct.pack("!H", len(data))
    _decode_only_oferror(bytes(data))


@FUZZ
@given(st.binary(max_size=80), st.lists(st.integers(0, 80), max_size=4))
def test_split_messages_random(data: bytes, cuts: list[int]) -> None:
    buf = bytearray()
    out: list[bytes] = []
    try:
        for part in (
            data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), None], strict=True)
        ):
            buf += part
            out += of.split_messages(buf)
    except of.OfError:
        return
    assert b"".join(out) + buf == data
    assert all(len(m) == of.parse_header(m).length for m in out)
