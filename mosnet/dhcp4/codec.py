"""BOOTP/DHCPv4 wire format (RFC 2131/2132, 3396, 3442, 3397) and IPv4+UDP framing.

Pure functions only: no sockets, no clock. ``decode`` and ``parse_ip_udp`` raise
nothing but :class:`DecodeError`, because their input comes off the wire.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from mosnet.base.errors import MosnetError

BOOTREQUEST, BOOTREPLY = 1, 2
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MSG_NAMES = {
    1: "DISCOVER",
    2: "OFFER",
    3: "REQUEST",
    4: "DECLINE",
    5: "ACK",
    6: "NAK",
    7: "RELEASE",
    8: "INFORM",
}
COOKIE = b"\x63\x82\x53\x63"
ZERO = IPv4Address(0)
SERVER_PORT, CLIENT_PORT = 67, 68

OPT_PAD, OPT_END = 0, 255
OPT_NETMASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN = 1, 3, 6, 12, 15
OPT_MTU, OPT_BROADCAST, OPT_NTP = 26, 28, 42
OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_OVERLOAD, OPT_MSG_TYPE = 50, 51, 52, 53
OPT_SERVER_ID, OPT_PRL, OPT_MESSAGE, OPT_MAX_SIZE = 54, 55, 56, 57
OPT_T1, OPT_T2, OPT_CLIENT_ID = 58, 59, 61
OPT_SEARCH, OPT_CLASSLESS_ROUTES = 119, 121
PARAM_REQUEST = (1, 3, 6, 12, 15, 26, 28, 42, 51, 54, 58, 59, 119, 121)

_HDR = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes, RFC 2131 fig. 1
_FIXED_LEN = {1: 4, 26: 2, 28: 4, 50: 4, 51: 4, 52: 1, 53: 1, 54: 4, 57: 2, 58: 4, 59: 4}
_MULTI_OF_4 = {3, 6, 42}  # lists of addresses, at least one
_MIN_BOOTP = 300  # some relays drop shorter BOOTP packets


class DecodeError(MosnetError):
    """A packet that is not a well-formed DHCPv4 (or IPv4/UDP) message."""


Route = tuple[IPv4Network, IPv4Address]


@dataclass(frozen=True)
class Message:
    """One BOOTP message; ``options`` maps code -> concatenated value (RFC 3396)."""

    op: int
    xid: int
    chaddr: bytes
    options: tuple[tuple[int, bytes], ...] = ()
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    secs: int = 0
    flags: int = 0
    hops: int = 0

    def opt(self, code: int) -> bytes | None:
        for key, value in self.options:
            if key == code:
                return value
        return None

    @property
    def msg_type(self) -> int | None:
        raw = self.opt(OPT_MSG_TYPE)
        return raw[0] if raw else None

    @property
    def server_id(self) -> IPv4Address | None:
        raw = self.opt(OPT_SERVER_ID)
        return IPv4Address(raw) if raw else None

    def u32(self, code: int) -> int | None:
        raw = self.opt(code)
        return int.from_bytes(raw, "big") if raw else None

    def addrs(self, code: int) -> tuple[IPv4Address, ...]:
        raw = self.opt(code) or b""
        return tuple(IPv4Address(raw[i : i + 4]) for i in range(0, len(raw) - 3, 4))

    def text(self, code: int) -> str | None:
        raw = self.opt(code)
        # NULs are tolerated as terminators (common in the wild), nothing else is stripped
        return raw.split(b"\0", 1)[0].decode("latin-1") if raw is not None else None

    def routes(self) -> tuple[Route, ...] | None:
        raw = self.opt(OPT_CLASSLESS_ROUTES)
        return parse_classless_routes(raw) if raw is not None else None

    def search(self) -> tuple[str, ...]:
        raw = self.opt(OPT_SEARCH)
        return parse_domain_list(raw) if raw is not None else ()


# ---------------------------------------------------------------- decoding


def decode(data: bytes) -> Message:
    """Parse and validate one DHCP message (the UDP payload)."""
    if len(data) < _HDR.size + 4:
        raise DecodeError(f"truncated: {len(data)} bytes")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, bootfile) = (
        _HDR.unpack_from(data)
    )
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise DecodeError(f"bad op {op}")
    if htype != 1 or hlen != 6:
        raise DecodeError(f"not ethernet: htype {htype} hlen {hlen}")
    if data[_HDR.size : _HDR.size + 4] != COOKIE:
        raise DecodeError("bad magic cookie")
    chunks: dict[int, list[bytes]] = {}
    _parse_options(data[_HDR.size + 4 :], chunks, require_end=True)
    overload = chunks.get(OPT_OVERLOAD)
    if overload is not None:
        ov = b"".join(overload)
        if len(ov) != 1 or ov[0] not in (1, 2, 3):
            raise DecodeError(f"bad option overload {ov!r}")
        # RFC 2131 4.1: options, then file, then sname
        if ov[0] & 1:
            _parse_options(bootfile, chunks, require_end=False)
        if ov[0] & 2:
            _parse_options(sname, chunks, require_end=False)
    options = tuple((code, b"".join(parts)) for code, parts in chunks.items())
    for code, value in options:
        _check_option(code, value)
    return Message(
        op=op,
        xid=xid,
        chaddr=chaddr[:6],
        options=options,
        ciaddr=IPv4Address(ci),
        yiaddr=IPv4Address(yi),
        siaddr=IPv4Address(si),
        giaddr=IPv4Address(gi),
        secs=secs,
        flags=flags,
        hops=hops,
    )


def _parse_options(buf: bytes, out: dict[int, list[bytes]], *, require_end: bool) -> None:
    i = 0
    while i < len(buf):
        code = buf[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return
        if i + 1 >= len(buf):
            raise DecodeError(f"option {code}: truncated length")
        length = buf[i + 1]
        if i + 2 + length > len(buf):
            raise DecodeError(f"option {code}: length {length} overruns packet")
        out.setdefault(code, []).append(buf[i + 2 : i + 2 + length])
        i += 2 + length
    if require_end:
        raise DecodeError("options not terminated by END")


def _check_option(code: int, value: bytes) -> None:
    want = _FIXED_LEN.get(code)
    if want is not None and len(value) != want:
        raise DecodeError(f"option {code}: length {len(value)}, expected {want}")
    if code in _MULTI_OF_4 and (not value or len(value) % 4):
        raise DecodeError(f"option {code}: length {len(value)} not a multiple of 4")
    if code == OPT_CLASSLESS_ROUTES:
        parse_classless_routes(value)
    elif code == OPT_SEARCH:
        parse_domain_list(value)


def parse_classless_routes(raw: bytes) -> tuple[Route, ...]:
    """RFC 3442: width, significant octets of the prefix, 4-octet router."""
    routes: list[Route] = []
    i = 0
    while i < len(raw):
        width = raw[i]
        if width > 32:
            raise DecodeError(f"option 121: prefix width {width} > 32")
        octets = (width + 7) // 8
        if i + 1 + octets + 4 > len(raw):
            raise DecodeError("option 121: truncated route")
        prefix = raw[i + 1 : i + 1 + octets] + bytes(4 - octets)
        router = raw[i + 1 + octets : i + 5 + octets]
        try:
            net = IPv4Network((IPv4Address(prefix), width), strict=True)
        except ValueError as exc:  # host bits set beyond the width
            raise DecodeError(f"option 121: {exc}") from None
        routes.append((net, IPv4Address(router)))
        i += 5 + octets
    if not routes:
        raise DecodeError("option 121: empty")
    return tuple(routes)


def parse_domain_list(raw: bytes) -> tuple[str, ...]:
    """RFC 3397/1035 names with compression pointers into this option only."""
    names: list[str] = []
    pos = 0
    while pos < len(raw):
        name, pos = _read_name(raw, pos)
        names.append(name)
    return tuple(names)


def _read_name(raw: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end: int | None = None
    seen: set[int] = set()
    total = 0
    while True:
        if pos >= len(raw):
            raise DecodeError("option 119: truncated name")
        length = raw[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(raw):
                raise DecodeError("option 119: truncated pointer")
            target = ((length & 0x3F) << 8) | raw[pos + 1]
            if target in seen or target >= pos:  # only backward pointers: no loops
                raise DecodeError("option 119: pointer loop")
            seen.add(target)
            end = pos + 2 if end is None else end
            pos = target
            continue
        if length & 0xC0:
            raise DecodeError("option 119: bad label type")
        if length == 0:
            return ".".join(labels), (pos + 1 if end is None else end)
        if pos + 1 + length > len(raw):
            raise DecodeError("option 119: truncated label")
        total += length + 1
        if total > 255:
            raise DecodeError("option 119: name too long")
        labels.append(raw[pos + 1 : pos + 1 + length].decode("latin-1"))
        pos += 1 + length


# ---------------------------------------------------------------- encoding


def encode(msg: Message) -> bytes:
    head = _HDR.pack(
        msg.op,
        1,
        6,
        msg.hops,
        msg.xid,
        msg.secs,
        msg.flags,
        msg.ciaddr.packed,
        msg.yiaddr.packed,
        msg.siaddr.packed,
        msg.giaddr.packed,
        msg.chaddr.ljust(16, b"\0"),
        b"",
        b"",
    )
    body = bytearray(head + COOKIE)
    for code, value in msg.options:
        # RFC 3396: long values are split into consecutive instances
        for start in range(0, max(len(value), 1), 255):
            chunk = value[start : start + 255]
            body += bytes((code, len(chunk))) + chunk
    body.append(OPT_END)
    return bytes(body.ljust(_MIN_BOOTP, b"\0"))


def _common(msg_type: int, mac: bytes, hostname: str | None) -> list[tuple[int, bytes]]:
    opts = [(OPT_MSG_TYPE, bytes((msg_type,))), (OPT_CLIENT_ID, b"\x01" + mac)]
    if msg_type in (DISCOVER, REQUEST):
        opts += [(OPT_PRL, bytes(PARAM_REQUEST)), (OPT_MAX_SIZE, struct.pack("!H", 1500))]
        if hostname:
            opts.append((OPT_HOSTNAME, hostname.encode("ascii")))
    return opts


def discover(mac: bytes, xid: int, *, secs: int = 0, hostname: str | None = None) -> Message:
    return Message(BOOTREQUEST, xid, mac, tuple(_common(DISCOVER, mac, hostname)), secs=secs)


def request(
    mac: bytes,
    xid: int,
    *,
    form: str,
    addr: IPv4Address,
    server_id: IPv4Address | None = None,
    secs: int = 0,
    hostname: str | None = None,
) -> Message:
    """REQUEST per RFC 2131 table 5.

    ``selecting``: option 50 + 54, ciaddr 0; ``init-reboot``: option 50 only;
    ``renewing``/``rebinding``: ciaddr only.
    """
    opts = _common(REQUEST, mac, hostname)
    ciaddr = ZERO
    if form == "selecting":
        if server_id is None:
            raise ValueError("selecting REQUEST needs the server id")
        opts += [(OPT_REQUESTED_IP, addr.packed), (OPT_SERVER_ID, server_id.packed)]
    elif form == "init-reboot":
        opts.append((OPT_REQUESTED_IP, addr.packed))
    elif form in ("renewing", "rebinding"):
        ciaddr = addr
    else:
        raise ValueError(f"unknown REQUEST form {form!r}")
    return Message(BOOTREQUEST, xid, mac, tuple(opts), ciaddr=ciaddr, secs=secs)


def decline(mac: bytes, xid: int, addr: IPv4Address, server_id: IPv4Address) -> Message:
    opts = _common(DECLINE, mac, None)
    opts += [(OPT_REQUESTED_IP, addr.packed), (OPT_SERVER_ID, server_id.packed)]
    return Message(BOOTREQUEST, xid, mac, tuple(opts))


def release(mac: bytes, xid: int, addr: IPv4Address, server_id: IPv4Address) -> Message:
    opts = _common(RELEASE, mac, None) + [(OPT_SERVER_ID, server_id.packed)]
    return Message(BOOTREQUEST, xid, mac, tuple(opts), ciaddr=addr)


# ---------------------------------------------------------------- IPv4 + UDP


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_udp_frame(
    src: IPv4Address, dst: IPv4Address, sport: int, dport: int, payload: bytes
) -> bytes:
    """An IPv4 packet (no options, TTL 64) carrying one UDP datagram."""
    ulen = 8 + len(payload)
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    ucsum = _csum(pseudo + udp) or 0xFFFF  # 0 means "no checksum" on the wire
    udp = udp[:6] + struct.pack("!H", ucsum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0, 64, 17, 0, src.packed, dst.packed)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + udp


def parse_ip_udp(
    packet: bytes, *, check_udp: bool = True
) -> tuple[IPv4Address, IPv4Address, int, int, bytes]:
    """Validate an IPv4/UDP packet; return (src, dst, sport, dport, payload).

    ``check_udp=False`` when the kernel says the checksum is not filled in yet
    (offload on veth/virtio: the field holds only the pseudo-header sum).
    """
    if len(packet) < 20:
        raise DecodeError("IPv4: truncated header")
    ver, ihl = packet[0] >> 4, (packet[0] & 0xF) * 4
    if ver != 4 or ihl < 20 or ihl > len(packet):
        raise DecodeError(f"IPv4: bad version {ver} or header length {ihl}")
    total = int.from_bytes(packet[2:4], "big")
    if total < ihl + 8 or total > len(packet):
        raise DecodeError(f"IPv4: bad total length {total}")
    if packet[9] != 17:
        raise DecodeError(f"IPv4: protocol {packet[9]} is not UDP")
    if int.from_bytes(packet[6:8], "big") & 0x3FFF:
        raise DecodeError("IPv4: fragment")
    if _csum(packet[:ihl]) != 0:
        raise DecodeError("IPv4: bad header checksum")
    src, dst = IPv4Address(packet[12:16]), IPv4Address(packet[16:20])
    sport, dport, ulen, ucsum = struct.unpack_from("!HHHH", packet, ihl)
    if ulen < 8 or ihl + ulen > total:
        raise DecodeError(f"UDP: bad length {ulen}")
    udp = packet[ihl : ihl + ulen]
    if ucsum and check_udp:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 17, ulen)
        if _csum(pseudo + udp) != 0:
            raise DecodeError("UDP: bad checksum")
    return src, dst, sport, dport, udp[8:]
