"""Pure OpenFlow 1.3 codec for the controller of br-mosnet (OVS 3.1); stdlib only.

Decoders raise only ``OfError`` whatever bytes they are fed. Encoders raise it for
what OVS would refuse at run time with an error naming neither flow nor field: a
number out of OVS's range, a match field or set-field action without its prerequisite."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from mosnet.base.errors import MosnetError
from mosnet.l2.frames import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6
from mosnet.l2.nd import ICMP6_NA, ICMP6_NS, IPPROTO_ICMPV6

OFP_VERSION, OFPP_MAX, OFPTT_ALL = 0x04, 0xFFFFFF00, 0xFF
OVS_PORTS = 0xFF00  # OVS keeps ports in 16 bits: 0-0xfeff, then the reserved ones
OFPP_IN_PORT, OFPP_TABLE, OFPP_NORMAL, OFPP_FLOOD = 0xFFFFFFF8, 0xFFFFFFF9, 0xFFFFFFFA, 0xFFFFFFFB
OFPP_ALL, OFPP_CONTROLLER, OFPP_LOCAL, OFPP_ANY = 0xFFFFFFFC, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF
OFPG_ANY, OFP_NO_BUFFER, OFPCML_NO_BUFFER = 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF  # CML: whole packet
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_EXPERIMENTER = 0, 1, 2, 3, 4
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY, OFPT_GET_CONFIG_REQUEST = 5, 6, 7
OFPT_GET_CONFIG_REPLY, OFPT_SET_CONFIG, OFPT_PACKET_IN, OFPT_FLOW_REMOVED = 8, 9, 10, 11
OFPT_PORT_STATUS, OFPT_PACKET_OUT, OFPT_FLOW_MOD, OFPT_GROUP_MOD = 12, 13, 14, 15
OFPT_PORT_MOD, OFPT_TABLE_MOD, OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 16, 17, 18, 19
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY, OFPT_ROLE_REQUEST, OFPT_ROLE_REPLY = 20, 21, 24, 25
OFPT_GET_ASYNC_REQUEST, OFPT_GET_ASYNC_REPLY, OFPT_SET_ASYNC, OFPT_METER_MOD = 26, 27, 28, 29
OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFC_DELETE, OFPFC_DELETE_STRICT = 0, 1, 2, 3, 4
OFPFF_SEND_FLOW_REM, OFPFF_CHECK_OVERLAP, OFPFF_RESET_COUNTS = 1, 2, 4
OFPFF_NO_PKT_COUNTS, OFPFF_NO_BYT_COUNTS = 8, 16
OFPR_NO_MATCH, OFPR_ACTION, OFPR_INVALID_TTL = 0, 1, 2  # packet-in reasons
OFPRR_IDLE_TIMEOUT, OFPRR_HARD_TIMEOUT, OFPRR_DELETE, OFPRR_GROUP_DELETE = 0, 1, 2, 3
OFPET_HELLO_FAILED, OFPET_BAD_REQUEST, OFPET_BAD_ACTION, OFPET_BAD_INSTRUCTION = 0, 1, 2, 3
OFPET_BAD_MATCH, OFPET_FLOW_MOD_FAILED, OFPET_EXPERIMENTER = 4, 5, 0xFFFF
OFPHET_VERSIONBITMAP, OFPMT_OXM, OFPXMC_OPENFLOW_BASIC, OFPIT_APPLY_ACTIONS = 1, 1, 0x8000, 4
OFPAT_OUTPUT, OFPAT_SET_FIELD = 0, 25

_HEADER, _HALVES = struct.Struct("!BBHI"), struct.Struct("!HH")  # HALVES: type + length
_OXM_HEADER = struct.Struct("!HBB")  # class, field << 1 | hasmask, length
_FLOW_MOD, _PACKET_OUT = struct.Struct("!QQBBHHHIIIH2x"), struct.Struct("!IIH6x")
_PACKET_IN, _FLOW_REMOVED = struct.Struct("!IHBBQ"), struct.Struct("!QHBBIIHHQQ")
_OUTPUT, _INSTRUCTION = struct.Struct("!HHIH6x"), struct.Struct("!HH4x")
# name: (OXM basic field number, value length, kind); numeric order = prerequisite order
_OXM: dict[str, tuple[int, int, str]] = {
    "in_port": (0, 4, "int"), "eth_dst": (3, 6, "mac"), "eth_src": (4, 6, "mac"),
    "eth_type": (5, 2, "int"), "ip_proto": (10, 1, "int"), "ipv4_dst": (12, 4, "ip4"),
    "arp_op": (21, 2, "int"), "arp_spa": (22, 4, "ip4"), "arp_tpa": (23, 4, "ip4"),
    "arp_sha": (24, 6, "mac"), "arp_tha": (25, 6, "mac"), "ipv6_src": (26, 16, "ip6"),
    "ipv6_dst": (27, 16, "ip6"), "icmpv6_type": (29, 1, "int"), "icmpv6_code": (30, 1, "int"),
    "nd_target": (31, 16, "ip6"), "nd_sll": (32, 6, "mac"), "nd_tll": (33, 6, "mac"),
}  # fmt: skip
_PARSE: dict[str, Callable[[bytes], object]] = {
    "int": int.from_bytes, "mac": bytes, "ip4": IPv4Address, "ip6": IPv6Address}  # fmt: skip


class OfError(MosnetError, ValueError):
    """An OpenFlow message we cannot encode or decode; the only error raised here."""


def _pack(st: struct.Struct, *values: Any) -> bytes:
    try:
        return st.pack(*values)
    except struct.error as e:
        raise OfError(f"value out of range in {values}: {e}") from None


def _unpack(st: struct.Struct, data: bytes, offset: int, what: str) -> tuple[Any, ...]:
    if not 0 <= offset <= len(data) - st.size:
        raise OfError(f"{what}: {len(data) - offset} bytes at {offset}, need {st.size}")
    return st.unpack_from(data, offset)


def _oxm_value(name: str, value: object) -> bytes:
    """The wire form of one field's value; OfError if its type or range is wrong."""
    _, size, kind = _OXM[name]
    top = 0x100 if name == "arp_op" else 1 << 8 * size  # OVS keeps arp_op in 8 bits
    if kind == "int" and type(value) is int and 0 <= value < top:  # type(): not a bool
        return value.to_bytes(size, "big")
    if kind == "mac" and type(value) is bytes and len(value) == 6:
        return value
    if kind[:2] == "ip" and isinstance(value, IPv4Address if kind == "ip4" else IPv6Address):
        return value.packed
    raise OfError(f"{name}: bad value {value!r} for a {size}-byte {kind}")


def _oxm(name: str, value: object, mask: bytes | None = None) -> bytes:
    raw = _oxm_value(name, value) + (mask or b"")
    head = _OXM[name][0] << 1 | (mask is not None)
    return _OXM_HEADER.pack(OFPXMC_OPENFLOW_BASIC, head, len(raw)) + raw


@dataclass(frozen=True)
class Match:
    """OXM basic-class fields; None = wildcard. ``encode`` calls ``check``.

    Prerequisites (OVS refuses a flow without them, OFPBMC_BAD_PREREQ): ``ip_proto``
    needs ``eth_type`` 0x0800 or 0x86dd; ``ipv4_dst`` 0x0800; ``arp_*`` 0x0806;
    ``ipv6_*`` 0x86dd; ``icmpv6_*`` also ``ip_proto`` 58; ``nd_target`` also
    ``icmpv6_type`` 135/136 and ``icmpv6_code`` 0 or wildcard (OVS checks it
    too); ``eth_dst_mask`` needs ``eth_dst`` without bits outside the mask.
    """

    in_port: int | None = None
    eth_dst: bytes | None = None  # 6 bytes
    eth_dst_mask: bytes | None = None  # e.g. 01:00:00:00:00:00 matches multicast
    eth_src: bytes | None = None
    eth_type: int | None = None
    ip_proto: int | None = None
    ipv4_dst: IPv4Address | None = None
    arp_op: int | None = None
    arp_spa: IPv4Address | None = None
    arp_tpa: IPv4Address | None = None
    ipv6_src: IPv6Address | None = None
    ipv6_dst: IPv6Address | None = None
    icmpv6_type: int | None = None
    icmpv6_code: int | None = None
    nd_target: IPv6Address | None = None

    def check(self) -> None:
        """Raise OfError for a bad value or a field set without its prerequisite."""
        for f in fields(self):
            if (value := getattr(self, f.name)) is not None:
                _oxm_value(f.name.removesuffix("_mask"), value)
                _require(f.name, self, f"match field {f.name}")
        if OVS_PORTS <= (self.in_port or 0) < OFPP_MAX:
            raise OfError(f"match: in_port {self.in_port:#x} outside OVS's range")
        dst, mask = self.eth_dst or b"", self.eth_dst_mask or b"\xff" * 6
        if int.from_bytes(dst) & ~int.from_bytes(mask):
            raise OfError(f"match: eth_dst has bits outside eth_dst_mask ({self})")

    def encode(self) -> bytes:
        """struct ofp_match (OFPMT_OXM), fields in OXM order, padded to 8 bytes."""
        self.check()
        oxms = b"".join(
            _oxm(name, value, self.eth_dst_mask if name == "eth_dst" else None)
            for name in _MATCH_FIELDS
            if (value := getattr(self, name)) is not None
        )
        size = _HALVES.size + len(oxms)
        return _HALVES.pack(OFPMT_OXM, size) + oxms + b"\0" * (-size % 8)

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> tuple[Match, int]:
        """The match at ``offset`` and the offset after its padding. Fields Match does not
        know are skipped; a known one masked (but eth_dst), repeated or mis-sized is an error."""
        mtype, length = _unpack(_HALVES, data, offset, "match")
        end, padded = offset + length, offset + (length + 7) // 8 * 8
        if mtype != OFPMT_OXM or length < _HALVES.size or padded > len(data):
            raise OfError(f"match: type {mtype}, length {length}, {len(data) - offset} bytes")
        values: dict[str, Any] = {}
        pos = offset + _HALVES.size
        while pos < end:
            oxm_class, field, size = _unpack(_OXM_HEADER, data[:end], pos, "match OXM")
            start, pos = pos + _OXM_HEADER.size, pos + _OXM_HEADER.size + size
            if pos > end:
                raise OfError(f"match: OXM field {field >> 1} overruns the match")
            name = _BY_NUMBER.get(field >> 1) if oxm_class == OFPXMC_OPENFLOW_BASIC else None
            if name is None:
                continue  # metadata, tunnel, registers...: not ours
            _, width, kind = _OXM[name]
            masked = field & 1
            if size != width * (1 + masked) or (masked and name != "eth_dst") or name in values:
                raise OfError(f"match: bad or repeated {name} (length {size}, masked {masked})")
            values[name] = _PARSE[kind](bytes(data[start : start + width]))
            if masked:
                values["eth_dst_mask"] = bytes(data[start + width : pos])
        return cls(**values), padded


_MATCH_FIELDS = tuple(f.name for f in fields(Match) if f.name != "eth_dst_mask")
_BY_NUMBER = {_OXM[name][0]: name for name in _MATCH_FIELDS}


def _icmp6(m: Match, *types: int) -> bool:
    """ICMPv6; with ``types``, also one of them and code 0 (OVS's is_nd() checks the code)."""
    icmp6 = m.eth_type == ETH_P_IPV6 and m.ip_proto == IPPROTO_ICMPV6
    return icmp6 and (not types or m.icmpv6_type in types and m.icmpv6_code in (None, 0))


# OVS's prerequisites (meta-flow.h MFP_*), for match fields and set-field actions alike
_Need = tuple[Callable[[Match], bool], str]
_NEEDS: dict[str, _Need] = {
    "eth_dst_mask": (lambda m: m.eth_dst is not None, "eth_dst"),
    "ip_proto": (lambda m: m.eth_type in (ETH_P_IP, ETH_P_IPV6), "eth_type 0x0800 or 0x86dd"),
    "ipv4_dst": (lambda m: m.eth_type == ETH_P_IP, "eth_type 0x0800"),
    **dict.fromkeys(("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"),
                    (lambda m: m.eth_type == ETH_P_ARP, "eth_type 0x0806")),
    **dict.fromkeys(("ipv6_src", "ipv6_dst"),
                    (lambda m: m.eth_type == ETH_P_IPV6, "eth_type 0x86dd")),
    **dict.fromkeys(("icmpv6_type", "icmpv6_code"), (_icmp6, "eth_type 0x86dd and ip_proto 58")),
    "nd_target": (lambda m: _icmp6(m, ICMP6_NS, ICMP6_NA), "icmpv6_type 135/136, code 0"),
    "nd_sll": (lambda m: _icmp6(m, ICMP6_NS), "icmpv6_type 135, icmpv6_code 0"),
    "nd_tll": (lambda m: _icmp6(m, ICMP6_NA), "icmpv6_type 136, icmpv6_code 0"),
}  # fmt: skip
_SET_FIELDS = ("eth_dst", "eth_src", "arp_sha", "arp_tha", "nd_sll", "nd_tll")


def _require(name: str, m: Match, what: str) -> None:
    ok, need = _NEEDS.get(name, (lambda m: True, ""))
    if not ok(m):
        raise OfError(f"{what} needs a match on {need} ({m})")


@dataclass(frozen=True)
class Output:
    port: int
    max_len: int = OFPCML_NO_BUFFER  # bytes sent to the controller


@dataclass(frozen=True)
class SetField:
    field: str  # one of _SET_FIELDS
    value: bytes  # 6 bytes


Action = Output | SetField


def _action(action: Action, match: Match | None = None) -> bytes:
    """The action; with ``match``, OfError if a set-field's prerequisite is not in it."""
    if isinstance(action, Output):
        if not (0 < action.port < OVS_PORTS or OFPP_IN_PORT <= action.port < OFPP_ANY):
            raise OfError(f"output: bad port {action.port:#x}")
        return _pack(_OUTPUT, OFPAT_OUTPUT, _OUTPUT.size, action.port, action.max_len)
    if action.field not in _SET_FIELDS:
        raise OfError(f"set_field: cannot set {action.field!r}")
    if match is not None:
        _require(action.field, match, f"set_field {action.field}")
    oxm = _oxm(action.field, action.value)
    length = -(-(_HALVES.size + len(oxm)) // 8) * 8  # the length includes the padding
    return (_HALVES.pack(OFPAT_SET_FIELD, length) + oxm).ljust(length, b"\0")


def _message(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return _pack(_HEADER, OFP_VERSION, msg_type, _HEADER.size + len(body), xid) + body


def hello(xid: int) -> bytes:
    """OFPT_HELLO with a version-bitmap element advertising 1.3 only."""
    return _message(OFPT_HELLO, xid, struct.pack("!HHI", OFPHET_VERSIONBITMAP, 8, 1 << OFP_VERSION))


def echo_request(xid: int, data: bytes = b"") -> bytes:
    return _message(OFPT_ECHO_REQUEST, xid, data)


def echo_reply(xid: int, data: bytes = b"") -> bytes:
    return _message(OFPT_ECHO_REPLY, xid, data)


def features_request(xid: int) -> bytes:
    return _message(OFPT_FEATURES_REQUEST, xid)


def set_config(xid: int, miss_send_len: int = OFPCML_NO_BUFFER) -> bytes:
    return _message(OFPT_SET_CONFIG, xid, _pack(_HALVES, 0, miss_send_len))  # frags: normal


def barrier_request(xid: int) -> bytes:
    return _message(OFPT_BARRIER_REQUEST, xid)


# fmt: off
def flow_mod(
    xid: int, *, match: Match, actions: Sequence[Action] = (), command: int = OFPFC_ADD,
    priority: int = 0, cookie: int = 0, cookie_mask: int = 0, table_id: int = 0,
    idle_timeout: int = 0, hard_timeout: int = 0, flags: int = 0,
    out_port: int = OFPP_ANY, out_group: int = OFPG_ANY) -> bytes:
    """``actions`` go into one apply-actions instruction, none = drop; OFPTT_ALL = all tables."""
    if command not in range(OFPFC_ADD, OFPFC_DELETE_STRICT + 1):
        raise OfError(f"flow_mod: unknown command {command}")
    fixed = _pack(_FLOW_MOD, cookie, cookie_mask, table_id, command, idle_timeout,
                  hard_timeout, priority, OFP_NO_BUFFER, out_port, out_group, flags)
    body = b"".join(_action(a, match) for a in actions)
    if body:
        body = _INSTRUCTION.pack(OFPIT_APPLY_ACTIONS, _INSTRUCTION.size + len(body)) + body
    return _message(OFPT_FLOW_MOD, xid, fixed + match.encode() + body)


def packet_out(
    xid: int, *, in_port: int, actions: Sequence[Action], data: bytes,
    buffer_id: int = OFP_NO_BUFFER) -> bytes:
    """OVS checks set-field prerequisites against the packet itself here, so we do not."""
    if not (0 <= in_port < OVS_PORTS or in_port in (OFPP_CONTROLLER, OFPP_LOCAL, OFPP_ANY)):
        raise OfError(f"packet_out: bad in_port {in_port:#x}")
    acts = b"".join(map(_action, actions))
    fixed = _pack(_PACKET_OUT, buffer_id, in_port, len(acts))
    return _message(OFPT_PACKET_OUT, xid, fixed + acts + data)
# fmt: on


@dataclass(frozen=True)
class Header:
    version: int
    type: int
    length: int
    xid: int


@dataclass(frozen=True)
class PacketIn:
    buffer_id: int
    total_len: int
    reason: int
    table_id: int
    cookie: int
    match: Match
    data: bytes


@dataclass(frozen=True)
class FlowRemoved:
    cookie: int
    priority: int
    reason: int
    table_id: int
    idle_timeout: int
    hard_timeout: int
    match: Match


@dataclass(frozen=True)
class ErrorMsg:
    type: int
    code: int
    data: bytes  # usually the start of the offending request


@dataclass(frozen=True)
class HelloMsg:
    version: int
    versions: frozenset[int]  # from the version bitmap, else {version}


def parse_header(msg: bytes) -> Header:
    version, msg_type, length, xid = _unpack(_HEADER, msg, 0, "header")
    if length < _HEADER.size:
        raise OfError(f"header: length {length} < {_HEADER.size}")
    return Header(version, msg_type, length, xid)


def split_messages(buf: bytearray) -> list[bytes]:
    """Remove and return the complete messages at the front of ``buf``; OfError on a
    length below 8 (the stream is out of step: close it)."""
    out: list[bytes] = []
    pos = 0
    while len(buf) - pos >= 4:
        length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
        if length < _HEADER.size:
            raise OfError(f"stream: message length {length} < {_HEADER.size}")
        if len(buf) - pos < length:
            break
        out.append(bytes(buf[pos : pos + length]))
        pos += length
    del buf[:pos]
    return out


def _hello(header: Header, msg: bytes) -> HelloMsg:
    pos = _HEADER.size
    while len(msg) - pos >= _HALVES.size:
        etype, elen = _HALVES.unpack_from(msg, pos)
        if elen < _HALVES.size or pos + elen > len(msg):
            raise OfError(f"hello: element length {elen} at {pos}")
        if etype == OFPHET_VERSIONBITMAP:  # bit b of 32-bit word w: version 32 * w + b
            raw = msg[pos + 4 : pos + elen]
            bits = sum(int.from_bytes(raw[i : i + 4]) << 8 * i for i in range(0, len(raw) - 3, 4))
            versions = frozenset(v for v in range(bits.bit_length()) if bits >> v & 1)
            return HelloMsg(header.version, versions)
        pos += -(-elen // 8) * 8
    return HelloMsg(header.version, frozenset({header.version}))


def decode(msg: bytes) -> PacketIn | FlowRemoved | ErrorMsg | HelloMsg | Header:
    """One whole message; other types come back as their Header. OfError if malformed,
    or a packet-in or flow-removed of another version than 1.3."""
    header = parse_header(msg)
    if header.length != len(msg):
        raise OfError(f"header: length {header.length}, message {len(msg)} bytes")
    if header.type == OFPT_HELLO:
        return _hello(header, msg)
    if header.type == OFPT_ERROR:
        etype, code = _unpack(_HALVES, msg, _HEADER.size, "error")
        return ErrorMsg(etype, code, bytes(msg[_HEADER.size + _HALVES.size :]))
    if header.type not in (OFPT_PACKET_IN, OFPT_FLOW_REMOVED):
        return header
    if header.version != OFP_VERSION:
        raise OfError(f"type {header.type}: version {header.version:#x}, not 1.3")
    if header.type == OFPT_FLOW_REMOVED:
        cookie, prio, reason, table, _, _, idle, hard, *_ = _unpack(_FLOW_REMOVED, msg, 8, "flow")
        match, _ = Match.decode(msg, _HEADER.size + _FLOW_REMOVED.size)
        return FlowRemoved(cookie, prio, reason, table, idle, hard, match)
    buffer_id, total_len, reason, table, cookie = _unpack(_PACKET_IN, msg, 8, "packet-in")
    match, pos = Match.decode(msg, _HEADER.size + _PACKET_IN.size)
    if pos + 2 > len(msg):
        raise OfError("packet-in: no padding after the match")
    return PacketIn(buffer_id, total_len, reason, table, cookie, match, bytes(msg[pos + 2 :]))
