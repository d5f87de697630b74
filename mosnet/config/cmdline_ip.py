"""Value checkers shared by the cmdline parsers, and the ``ip=`` dialect.

Checkers raise :class:`ParamError` naming the parameter, the bad token and
the expected form; callers decide whether that drops one item or the whole
parameter. ``parse_ip`` understands every kernel and dracut ``ip=`` form
(see docs: prior-art §3) and reports forms mosnet cannot act on yet as notes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from mosnet.base.errors import ParamError, escaped
from mosnet.config.model import Ip4Static, Ip6Static, LinkSetting, PortRange

IpAddr = IPv4Address | IPv6Address
T = TypeVar("T")

E_IFNAME = "an interface name (1-15 printable ASCII characters, no '/', ':' or space)"
E_IP4 = "a unicast IPv4 address such as 192.0.2.10"
E_IP6 = "a unicast IPv6 address such as 2001:db8::10 (no %scope)"
E_MASK4 = "a contiguous dotted netmask such as 255.255.255.0, or a prefix length 0-32"
E_PREFIX6 = "a prefix length 0-128"
E_PORT = "a port 1-65535 or a range <first>-<last> with first <= last"
E_MAC = "a unicast Ethernet MAC such as aa:bb:cc:dd:ee:ff"
E_HOSTNAME = "a host name (letters, digits and '-', dot-separated labels of 1-63, max 253)"
E_NAMESERVER = "an IPv4 or IPv6 address such as 192.0.2.53 or [2001:db8::53]"
E_MTU = "an MTU 68-65535"
E_IP = (
    "dhcp|on|any|off|none|dhcp6|auto6|either6|link6|single-dhcp, "
    "<iface>:<method>[:[<mtu>][:<mac>]], or "
    "<client>:[<peer>]:<gw>:<netmask>:<hostname>:<iface>:<method>[:...]"
)
E_METHOD = "none|off|static|dhcp|on|any|dhcp6|auto6|ibft"

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DHCP_WORDS = ("dhcp", "on", "any", "single-dhcp")
_STATIC_WORDS = ("", "none", "off", "static")
# Valid in dracut/kernel/systemd but not implemented by mosnet yet: a note, not an error.
_LATER_WORDS = ("dhcp6", "auto6", "either6", "link6", "ibft", "bootp", "rarp", "both")
_DHCP6_WORDS = ("dhcp6", "either6")  # DHCP mode plus a DHCPv6 client


@dataclass
class Sink:
    """Collects errors and notes so one bad token never stops the parse."""

    errors: list[ParamError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, param: str, token: str, expected: str) -> None:
        self.errors.append(ParamError(param, token, expected))

    def note(self, text: str) -> None:
        # Notes quote raw cmdline text; keep escape codes off the console.
        self.notes.append(escaped(text))


def number(param: str, tok: str, lo: int, hi: int, expected: str) -> int:
    # ASCII digits only: int() would also take "1_0", " 1" and non-ASCII digits.
    if re.fullmatch(r"[0-9]{1,7}", tok) is None or not lo <= int(tok) <= hi:
        raise ParamError(param, tok, expected)
    return int(tok)


def ifname(param: str, tok: str) -> str:
    """Linux dev_valid_name(), narrowed to printable ASCII for safe logs."""
    if (
        not 1 <= len(tok) <= 15
        or tok in (".", "..")
        or any(not "!" <= c <= "~" or c in "/:" for c in tok)
    ):
        raise ParamError(param, tok, E_IFNAME)
    return tok


def mac(param: str, tok: str) -> str:
    """``aa:bb:..`` or ``aa-bb-..`` → lower case with colons; unicast, non-zero."""
    if _MAC_RE.fullmatch(tok) is None:
        raise ParamError(param, tok, E_MAC)
    octets = [int(x, 16) for x in re.split("[:-]", tok)]
    if octets[0] & 1 or not any(octets):  # the kernel refuses these as a NIC address
        raise ParamError(param, tok, E_MAC)
    return ":".join(f"{o:02x}" for o in octets)


def host4(param: str, tok: str) -> IPv4Address:
    try:
        addr = IPv4Address(tok)
    except ValueError:
        raise ParamError(param, tok, E_IP4) from None
    bad = addr.is_unspecified or addr.is_loopback or addr.is_multicast or addr.is_reserved
    if bad:  # is_reserved covers 240/4 including 255.255.255.255
        raise ParamError(param, tok, E_IP4)
    return addr


def host6(param: str, tok: str) -> IPv6Address:
    try:
        addr = IPv6Address(tok) if "%" not in tok else None
    except ValueError:
        addr = None
    if addr is None or addr.is_unspecified or addr.is_loopback or addr.is_multicast:
        raise ParamError(param, tok, E_IP6)
    if addr.ipv4_mapped is not None:
        raise ParamError(param, tok, E_IP6)
    return addr


def mask4(param: str, tok: str) -> int:
    """Prefix length from a dotted netmask (must be contiguous) or ``24``/``/24``."""
    digits = tok.removeprefix("/")
    if "." not in tok:
        return number(param, digits, 0, 32, E_MASK4)
    try:
        value = int(IPv4Address(tok))
    except ValueError:
        raise ParamError(param, tok, E_MASK4) from None
    host_bits = ~value & 0xFFFFFFFF
    if host_bits & (host_bits + 1):  # ones after a zero: 255.0.255.0
        raise ParamError(param, tok, E_MASK4)
    return 32 - host_bits.bit_length()


def check_host_in_net(param: str, tok: str, addr: IPv4Address, prefixlen: int) -> None:
    """Up to /30 the all-zeros and all-ones host addresses are not usable."""
    if prefixlen > 30:
        return
    net = Ip4Static(addr, None, prefixlen).network
    if addr in (net.network_address, net.broadcast_address):
        raise ParamError(param, tok, f"a host address inside {net}, not its network/broadcast")


def port_range(param: str, tok: str) -> PortRange:
    """``80`` or ``8000-8100``; the whole token is named when any part is bad."""
    first, sep, last = tok.partition("-")
    try:
        lo = number(param, first, 1, 65535, E_PORT)
        hi = number(param, last, 1, 65535, E_PORT) if sep else lo
    except ParamError:
        raise ParamError(param, tok, E_PORT) from None
    if lo > hi:
        raise ParamError(param, tok, E_PORT)
    return PortRange(lo, hi)


def hostname(param: str, tok: str) -> str:
    if len(tok) > 253 or _HOSTNAME_RE.fullmatch(tok) is None:
        raise ParamError(param, tok, E_HOSTNAME)
    return tok


def nameserver(param: str, tok: str) -> IpAddr:
    inner = tok[1:-1] if tok.startswith("[") and tok.endswith("]") else tok
    try:
        addr: IpAddr = IPv6Address(inner) if ":" in inner else IPv4Address(inner)
    except ValueError:
        raise ParamError(param, tok, E_NAMESERVER) from None
    if "%" in inner or addr.is_unspecified or addr.is_multicast:
        raise ParamError(param, tok, E_NAMESERVER)
    return addr


@dataclass(frozen=True)
class IpForm:
    """What one ``ip=`` value asks for; ``None``/empty where it says nothing."""

    ip4: Ip4Static | None = None
    ip6: Ip6Static | None = None
    hostname: str | None = None
    nameservers: tuple[IpAddr, ...] = ()
    dhcp_device: str | None = None
    dhcp_all: bool = False
    dhcp6: bool = False
    link: LinkSetting | None = None  # MTU/MAC fields
    off: bool = False  # ip=off|none: no network


def split_fields(value: str) -> list[str]:
    """Split on ':' outside ``[...]`` (IPv6 addresses); brackets must balance."""
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in value:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if depth not in (0, 1):
            raise ParamError("ip", value, "balanced [ ] around IPv6 addresses")
        if ch == ":" and depth == 0:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise ParamError("ip", value, "balanced [ ] around IPv6 addresses")
    fields.append("".join(current))
    return fields


def _pop_mac(fields: list[str]) -> tuple[list[str], str | None]:
    """A trailing MAC spreads over six ':'-fields; glue it back together."""
    if len(fields) >= 8 and all(re.fullmatch("[0-9a-fA-F]{2}", f) for f in fields[-6:]):
        return fields[:-6], ":".join(fields[-6:])
    return fields, None


def parse_ip(value: str, sink: Sink) -> IpForm:
    """One ``ip=`` value; raises ParamError when the form as a whole is unusable."""
    word = value.lower()
    if ":" not in value and "," in value and word.split(",")[0] == "dhcp":
        sink.note(f"ip={value!r}: kernel DHCP client-id not supported yet; plain DHCP")
        return IpForm(dhcp_all=True)
    if ":" not in value and re.fullmatch("[0-9.]+", value) is None:
        return _ip_word(value, sink)
    fields, hwaddr = _pop_mac(split_fields(value))
    if fields[0] == "" or fields[0].startswith("[") or re.fullmatch("[0-9.]+", fields[0]):
        # The kernel lets trailing fields go: ip=<client> alone is a static form.
        return _ip_full(value, fields + [""] * (7 - len(fields)), hwaddr, sink)
    return _ip_iface(value, fields, hwaddr, sink)


def _ip_word(value: str, sink: Sink) -> IpForm:
    word = value.lower()
    if word in _DHCP_WORDS:
        return IpForm(dhcp_all=True)
    if word in _DHCP6_WORDS:
        return IpForm(dhcp_all=True, dhcp6=True)
    if word in ("off", "none"):
        return IpForm(off=True)
    if word in _LATER_WORDS or word == "link-local":
        sink.note(f"ip={value}: not supported yet, ignored")
    else:
        raise ParamError("ip", value, E_IP)
    return IpForm()


def _ip_iface(value: str, fields: list[str], hwaddr: str | None, sink: Sink) -> IpForm:
    """``<iface>:<method>[:[<mtu>][:<mac>]]``."""
    if len(fields) > 3:
        raise ParamError("ip", value, E_IP)
    dev = ifname("ip", fields[0])
    method = fields[1].lower()
    if method not in _DHCP_WORDS and method not in _LATER_WORDS:
        raise ParamError("ip", fields[1], "dhcp|on|any|dhcp6|auto6|link6 after <iface>:")
    link = _link_setting(dev, fields[2] if len(fields) > 2 else "", hwaddr, sink)
    if method in _DHCP6_WORDS:
        return IpForm(dhcp_device=dev, dhcp6=True, link=link)
    if method in _LATER_WORDS:
        sink.note(f"ip={value}: {method} not supported yet, ignored")
        return IpForm()
    return IpForm(dhcp_device=dev, link=link)


def _link_setting(dev: str | None, mtu: str, hwaddr: str | None, sink: Sink) -> LinkSetting | None:
    """The MTU and MAC fields; a bad one is reported and dropped alone."""
    got_mtu = _soft(sink, lambda p, t: number(p, t, 68, 65535, E_MTU), mtu) if mtu else None
    got_mac = _soft(sink, mac, hwaddr) if hwaddr is not None else None
    if got_mtu is None and got_mac is None:
        return None
    return LinkSetting(dev, got_mtu, got_mac)


def _ip_full(value: str, f: list[str], hwaddr: str | None, sink: Sink) -> IpForm:
    """``<client>:[<peer>]:<gw>:<netmask>:<hostname>:<iface>:<method>[:...]``."""
    method = f[6].lower()
    dev = ifname("ip", f[5]) if f[5] else None
    if method in _DHCP_WORDS + _DHCP6_WORDS:
        if any(f[:4]):
            sink.note(f"ip={value}: {method} asked, static fields ignored")
        host = _soft(sink, hostname, f[4]) if f[4] else None
        servers, link = _ip_tail(value, f[7:], dev, hwaddr, sink)
        return IpForm(
            hostname=host, nameservers=servers, dhcp_device=dev, dhcp_all=dev is None,
            dhcp6=method in _DHCP6_WORDS, link=link,
        )  # fmt: skip
    if method in _LATER_WORDS:
        sink.note(f"ip={value}: {method} not supported yet, ignored")
        return IpForm()
    if method not in _STATIC_WORDS:
        raise ParamError("ip", f[6], E_METHOD)
    if not f[0]:
        raise ParamError("ip", value, "a client address for a static ip= (or a DHCP method)")
    form = _ip_static(value, f, dev, sink)
    host = _soft(sink, hostname, f[4]) if f[4] else None
    servers, link = _ip_tail(value, f[7:], dev, hwaddr, sink)
    return IpForm(form.ip4, form.ip6, host, servers, link=link)


def _ip_static(value: str, f: list[str], dev: str | None, sink: Sink) -> IpForm:
    if f[0].startswith("["):
        addr6 = host6("ip", _unbracket(f[0], E_IP6))
        gw6 = host6("ip", _unbracket(f[2], E_IP6)) if f[2] else None
        plen = number("ip", f[3].removeprefix("/"), 0, 128, E_PREFIX6) if f[3] else 64
        _same_gw(f[2], addr6 == gw6)
        _peer(value, f[1], "[", sink)
        if not f[3]:
            sink.note(f"ip={value}: no prefix length, /64 assumed")
        return IpForm(ip6=Ip6Static(addr6, plen, gw6, dev, source="ip"))
    addr4 = host4("ip", f[0])
    gw4 = host4("ip", f[2]) if f[2] else None
    plen = mask4("ip", f[3]) if f[3] else _classful(addr4)
    _same_gw(f[2], addr4 == gw4)
    check_host_in_net("ip", f[0], addr4, plen)
    _peer(value, f[1], "", sink)
    if not f[3]:
        sink.note(f"ip={value}: no netmask, classful /{plen} assumed as the kernel does")
    return IpForm(ip4=Ip4Static(addr4, gw4, plen, dev, source="ip"))


def _unbracket(tok: str, expected: str) -> str:
    if not (tok.startswith("[") and tok.endswith("]")):
        raise ParamError("ip", tok, f"{expected} in [ ] (same family as the client)")
    return tok[1:-1]


def _same_gw(tok: str, same: bool) -> None:
    if same:
        raise ParamError("ip", tok, "a gateway different from the client address")


def _peer(value: str, tok: str, bracket: str, sink: Sink) -> None:
    """Point-to-point peers are validated, then ignored: the gateway goes on-link."""
    if not tok:
        return
    addr, _, plen = tok.partition("/")
    try:
        if bracket:
            host6("ip", _unbracket(addr, E_IP6))
        else:
            host4("ip", addr)
        if plen:
            number("ip", plen, 0, 128 if bracket else 32, "a peer prefix length")
        sink.note(f"ip={value}: peer {tok} not supported yet, ignored")
    except ParamError as exc:
        sink.errors.append(exc)


def _classful(addr: IPv4Address) -> int:
    first = int(addr) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24


def _soft(sink: Sink, check: Callable[[str, str], T], tok: str) -> T | None:
    """Run one check; a bad token is recorded and the rest of the form still applies."""
    try:
        return check("ip", tok)
    except ParamError as exc:
        sink.errors.append(exc)
        return None


def _ip_tail(
    value: str, tail: list[str], dev: str | None, hwaddr: str | None, sink: Sink
) -> tuple[tuple[IpAddr, ...], LinkSetting | None]:
    """Fields 8+: ``<mtu>[:<mac>]`` (dracut) or ``<dns1>[:<dns2>[:<ntp>]]`` (kernel)."""
    if hwaddr is not None or (tail and re.fullmatch("[0-9]+", tail[0])):
        if len(tail) > 1:
            sink.error("ip", ":".join(tail[1:]), E_MAC)
        return (), _link_setting(dev, tail[0] if tail else "", hwaddr, sink)
    if len(tail) > 3:
        sink.error("ip", ":".join(tail[3:]), "at most <dns1>:<dns2>:<ntp> after the method")
    servers: list[IpAddr] = []
    for tok in tail[:2]:
        if tok:
            got = _soft(sink, nameserver, tok)
            servers += [got] if got is not None else []
    if len(tail) > 2 and tail[2]:
        sink.note(f"ip={value}: NTP server {tail[2]} ignored")
    return tuple(servers), None
