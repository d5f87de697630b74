"""DHCPv6 wire format (RFC 8415 8, 21; RFC 3646 DNS options). Pure, no I/O.

``decode`` raises nothing but :class:`DecodeError` whatever bytes it gets:
it checks every option length, including those nested in IA_NA/IAADDR, so
the accessors of a decoded :class:`Message` cannot fail later.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from mosnet.base.errors import MosnetError

SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY = range(1, 8)
RELEASE, DECLINE, RECONFIGURE, INFORMATION_REQUEST = 8, 9, 10, 11
MSG_NAMES = {
    1: "SOLICIT",
    2: "ADVERTISE",
    3: "REQUEST",
    4: "CONFIRM",
    5: "RENEW",
    6: "REBIND",
    7: "REPLY",
    8: "RELEASE",
    9: "DECLINE",
    10: "RECONFIGURE",
    11: "INFORMATION-REQUEST",
}
CLIENT_PORT, SERVER_PORT = 546, 547
ALL_SERVERS = IPv6Address("ff02::1:2")  # All_DHCP_Relay_Agents_and_Servers

OPT_CLIENTID, OPT_SERVERID, OPT_IA_NA, OPT_IAADDR, OPT_ORO = 1, 2, 3, 5, 6
OPT_PREFERENCE, OPT_ELAPSED_TIME, OPT_STATUS_CODE, OPT_RAPID_COMMIT = 7, 8, 13, 14
OPT_DNS_SERVERS, OPT_DOMAIN_LIST, OPT_INFO_REFRESH_TIME = 23, 24, 32
SUCCESS, UNSPEC_FAIL, NO_ADDRS_AVAIL, NO_BINDING, NOT_ON_LINK, USE_MULTICAST = range(6)
STATUS_NAMES = {
    0: "Success",
    1: "UnspecFail",
    2: "NoAddrsAvail",
    3: "NoBinding",
    4: "NotOnLink",
    5: "UseMulticast",
}
INFINITY = 0xFFFFFFFF
DUID_LL, HWTYPE_ETHER = 3, 1

_FIXED_LEN = {OPT_PREFERENCE: 1, OPT_ELAPSED_TIME: 2, OPT_INFO_REFRESH_TIME: 4, OPT_RAPID_COMMIT: 0}
_IA_NA = struct.Struct("!III")
_IAADDR = struct.Struct("!16sII")

Options = tuple[tuple[int, bytes], ...]


class DecodeError(MosnetError):
    """Bytes that are not a well-formed DHCPv6 message."""


@dataclass(frozen=True)
class Status:
    code: int
    message: str = ""

    def __str__(self) -> str:
        name = STATUS_NAMES.get(self.code, str(self.code))
        return f"{name}: {self.message}" if self.message else name


@dataclass(frozen=True)
class IaAddr:
    address: IPv6Address
    preferred: int
    valid: int
    status: Status | None = None


@dataclass(frozen=True)
class IaNa:
    iaid: int
    t1: int
    t2: int
    addrs: tuple[IaAddr, ...] = ()
    status: Status | None = None


@dataclass(frozen=True)
class Message:
    msg_type: int
    xid: int  # 24 bits
    options: Options = ()

    def opt(self, code: int) -> bytes | None:
        for key, value in self.options:
            if key == code:
                return value
        return None

    @property
    def client_id(self) -> bytes | None:
        return self.opt(OPT_CLIENTID)

    @property
    def server_id(self) -> bytes | None:
        return self.opt(OPT_SERVERID)

    @property
    def status(self) -> Status | None:
        raw = self.opt(OPT_STATUS_CODE)
        return None if raw is None else _status(raw)

    @property
    def preference(self) -> int:
        raw = self.opt(OPT_PREFERENCE)
        return raw[0] if raw else 0

    @property
    def ia_nas(self) -> tuple[IaNa, ...]:
        return tuple(_ia_na(v) for k, v in self.options if k == OPT_IA_NA)

    @property
    def dns(self) -> tuple[IPv6Address, ...]:
        raw = self.opt(OPT_DNS_SERVERS) or b""
        return tuple(IPv6Address(raw[i : i + 16]) for i in range(0, len(raw), 16))

    @property
    def domains(self) -> tuple[str, ...]:
        raw = self.opt(OPT_DOMAIN_LIST)
        return (decode_names(raw) or ()) if raw else ()

    @property
    def info_refresh(self) -> int | None:
        raw = self.opt(OPT_INFO_REFRESH_TIME)
        return int.from_bytes(raw, "big") if raw else None


# ------------------------------------------------------------------ encode
def encode(msg: Message) -> bytes:
    return struct.pack("!I", (msg.msg_type & 0xFF) << 24 | msg.xid & 0xFFFFFF) + encode_options(
        msg.options
    )


def encode_options(options: Options) -> bytes:
    out = bytearray()
    for code, value in options:
        if len(value) > 0xFFFF:
            raise ValueError(f"option {code}: {len(value)} bytes is too long")
        out += struct.pack("!HH", code, len(value)) + value
    return bytes(out)


def duid_ll(mac: bytes) -> bytes:
    """DUID-LL (RFC 8415 11.4): stable across reboots without any storage."""
    return struct.pack("!HH", DUID_LL, HWTYPE_ETHER) + mac


def ia_na(ia: IaNa) -> bytes:
    """The IA_NA option body (RFC 8415 21.4) with IAADDR sub-options."""
    subs: list[tuple[int, bytes]] = []
    for a in ia.addrs:
        inner = encode_options(((OPT_STATUS_CODE, _status_bytes(a.status)),)) if a.status else b""
        subs.append((OPT_IAADDR, _IAADDR.pack(a.address.packed, a.preferred, a.valid) + inner))
    if ia.status is not None:
        subs.append((OPT_STATUS_CODE, _status_bytes(ia.status)))
    return _IA_NA.pack(ia.iaid, ia.t1, ia.t2) + encode_options(tuple(subs))


def status_option(status: Status) -> tuple[int, bytes]:
    return (OPT_STATUS_CODE, _status_bytes(status))


def _status_bytes(status: Status) -> bytes:
    return struct.pack("!H", status.code) + status.message.encode("utf-8")


def oro(*codes: int) -> tuple[int, bytes]:
    return (OPT_ORO, b"".join(struct.pack("!H", c) for c in codes))


def elapsed(centiseconds: int) -> tuple[int, bytes]:
    return (OPT_ELAPSED_TIME, struct.pack("!H", max(0, min(0xFFFF, centiseconds))))


def encode_names(names: tuple[str, ...]) -> bytes:
    out = bytearray()
    for name in names:
        for label in name.rstrip(".").split("."):
            out += bytes((len(label),)) + label.encode("ascii")
        out += b"\0"
    return bytes(out)


# ------------------------------------------------------------------ decode
def decode(data: bytes) -> Message:
    if len(data) < 4:
        raise DecodeError(f"{len(data)} bytes, need at least 4")
    head = int.from_bytes(data[:4], "big")
    kind = head >> 24
    if kind == 12 or kind == 13:
        raise DecodeError("relay message")  # never for a client on the link
    options = _split(data[4:])
    for code, value in options:
        _check(code, value)
    return Message(kind, head & 0xFFFFFF, options)


def _split(data: bytes) -> Options:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise DecodeError("truncated option header")
        code, length = struct.unpack_from("!HH", data, pos)
        end = pos + 4 + length
        if end > len(data):
            raise DecodeError(f"option {code}: length {length} runs past the end")
        out.append((code, bytes(data[pos + 4 : end])))
        pos = end
    return tuple(out)


def _check(code: int, value: bytes) -> None:
    """Validate one top-level option so the Message accessors cannot fail."""
    want = _FIXED_LEN.get(code)
    if want is not None and len(value) != want:
        raise DecodeError(f"option {code}: {len(value)} bytes, want {want}")
    if code in (OPT_CLIENTID, OPT_SERVERID) and not 2 < len(value) <= 130:
        raise DecodeError(f"DUID option {code}: {len(value)} bytes")  # RFC 8415 11.1
    if code == OPT_DNS_SERVERS and len(value) % 16:
        raise DecodeError(f"DNS servers: {len(value)} bytes, not a multiple of 16")
    if code == OPT_ORO and len(value) % 2:
        raise DecodeError("ORO: odd length")
    if code == OPT_STATUS_CODE:
        _status(value)
    if code == OPT_IA_NA:
        _ia_na(value)


def _status(raw: bytes) -> Status:
    if len(raw) < 2:
        raise DecodeError(f"status code: {len(raw)} bytes")
    text = raw[2:].decode("utf-8", errors="replace")
    return Status(int.from_bytes(raw[:2], "big"), text)


def _ia_na(raw: bytes) -> IaNa:
    if len(raw) < _IA_NA.size:
        raise DecodeError(f"IA_NA: {len(raw)} bytes, need {_IA_NA.size}")
    iaid, t1, t2 = _IA_NA.unpack_from(raw)
    addrs: list[IaAddr] = []
    status: Status | None = None
    for code, value in _split(raw[_IA_NA.size :]):
        if code == OPT_IAADDR:
            addrs.append(_iaaddr(value))
        elif code == OPT_STATUS_CODE:
            status = _status(value)
    return IaNa(iaid, t1, t2, tuple(addrs), status)


def _iaaddr(raw: bytes) -> IaAddr:
    if len(raw) < _IAADDR.size:
        raise DecodeError(f"IAADDR: {len(raw)} bytes, need {_IAADDR.size}")
    addr, preferred, valid = _IAADDR.unpack_from(raw)
    status: Status | None = None
    for code, value in _split(raw[_IAADDR.size :]):
        if code == OPT_STATUS_CODE:
            status = _status(value)
    return IaAddr(IPv6Address(addr), preferred, valid, status)


def decode_names(data: bytes) -> tuple[str, ...] | None:
    """Uncompressed DNS wire names (RFC 1035 3.1), zero padding allowed at the end."""
    names: list[str] = []
    labels: list[str] = []
    pos = 0
    while pos < len(data):
        n = data[pos]
        if n == 0:
            if labels:
                names.append(".".join(labels))
            labels, pos = [], pos + 1
            continue
        if n > 63 or pos + 1 + n > len(data):
            return None  # also rejects compression pointers (0xc0)
        try:
            labels.append(data[pos + 1 : pos + 1 + n].decode("ascii").lower())
        except UnicodeDecodeError:
            return None
        pos += 1 + n
    return None if labels else tuple(names)  # an unterminated name is malformed
