"""Turn the kernel command line into a :class:`NetConfig`, never raising.

``parse(text)`` returns a frozen :class:`ParseResult` with three parts:

* ``config``: the NetConfig; every field that had no usable value keeps its
  default, and one bad token drops only what it belongs to (one port, one
  NAT forward, one nameserver), never the rest of the line;
* ``errors``: one :class:`ParamError` per malformed token (parameter, token,
  expected form), in command-line order; log them at warning level;
* ``notes``: informational lines (precedence decisions, valid forms mosnet
  does not support yet, ignored duplicates); log them at info level.

Single-valued parameters: the last valid occurrence wins (as in the kernel;
an invalid one is reported and dropped alone, so an earlier valid one
stays); ``ip=``, ``ifname=`` and ``nameserver=`` repeat. A value holding
bytes that are not UTF-8 is malformed like any other. A valid ``mosip4``/``mosip6``
wins over a static ``ip=`` of the same family; an invalid one does not, so
the ``ip=`` address still brings the machine up.

Which parameters are the network's, their form and expected text and which
repeat: ``mosnet.config.registry``, which ``parse`` dispatches through. The
handlers are here, ``mosfirewall``/``mosnat`` in ``cmdline_fw`` and the
``ip=`` dialect in ``cmdline_ip``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from mosnet.base.errors import ParamError, shown
from mosnet.config import cmdline_fw, cmdline_link, kcmdline, registry
from mosnet.config import cmdline_ip as v  # value checkers and the ip= dialect
from mosnet.config.model import (
    BondSpec,
    BridgeKind,
    DhcpSpec,
    FirewallSpec,
    Ip4Static,
    Ip6Static,
    LinkSetting,
    NatSpec,
    NetConfig,
    VlanSpec,
)

MAX_TIMEOUT = registry.MAX_SECONDS
S = TypeVar("S", Ip4Static, Ip6Static)
_BOOTIF_RE = re.compile(r"(?:01-)?([0-9a-fA-F]{2}(?:-[0-9a-fA-F]{2}){5})")


@dataclass(frozen=True)
class ParseResult:
    config: NetConfig
    errors: tuple[ParamError, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Builder:
    """Mutable scratch state; frozen into a NetConfig at the end."""

    sink: v.Sink = field(default_factory=v.Sink)
    ip4: Ip4Static | None = None
    ip6: Ip6Static | None = None
    mosip4_given: bool = False
    mosip6_given: bool = False
    ip_forms: list[tuple[str, v.IpForm]] = field(default_factory=list)
    dhcp: DhcpSpec = field(default_factory=DhcpSpec)
    firewall: FirewallSpec | None = None
    nat: NatSpec | None = None
    bridge: BridgeKind = "auto"
    bootif: str | None = None
    ifnames: list[tuple[str, str]] = field(default_factory=list)
    nameservers: list[v.IpAddr] = field(default_factory=list)
    hostname: str | None = None
    bonds: list[BondSpec] = field(default_factory=list)
    vlans: list[VlanSpec] = field(default_factory=list)
    link_settings: list[LinkSetting] = field(default_factory=list)
    neednet: bool | None = None  # rd.neednet=, None: not given
    ip_off: bool = False
    peerdns: bool = True
    use_bootif: bool = True


# --- the mos* parameters -------------------------------------------------------


def _mosip4(value: str, b: _Builder) -> None:
    b.mosip4_given = True
    parts = value.split(",")
    if len(parts) not in (3, 4):
        raise ParamError("mosip4", value, registry.expected("mosip4"))
    addr = v.host4("mosip4", parts[0])
    gw = v.host4("mosip4", parts[1])
    plen = v.mask4("mosip4", parts[2])
    if gw == addr:
        raise ParamError("mosip4", parts[1], "a gateway different from the address")
    v.check_host_in_net("mosip4", parts[0], addr, plen)
    dev = v.ifname("mosip4", parts[3]) if len(parts) == 4 and parts[3] else None
    b.ip4 = Ip4Static(addr, gw, plen, dev)


def _mosip6(value: str, b: _Builder) -> None:
    b.mosip6_given = True
    parts = value.split(",")
    if len(parts) not in (2, 3) or "/" not in parts[0]:
        raise ParamError("mosip6", value, registry.expected("mosip6"))
    addr_tok, _, plen_tok = parts[0].partition("/")
    addr = v.host6("mosip6", addr_tok)
    plen = v.number("mosip6", plen_tok, 0, 128, v.E_PREFIX6)
    gw = v.host6("mosip6", parts[1])
    if gw == addr:
        raise ParamError("mosip6", parts[1], "a gateway different from the address")
    dev = v.ifname("mosip6", parts[2]) if len(parts) == 3 and parts[2] else None
    b.ip6 = Ip6Static(addr, plen, gw, dev)


def _timeout(value: str, b: _Builder) -> None:
    # No float(): it would take "nan", "inf", "1e9" and "1_0".
    if re.fullmatch(r"[0-9]{1,6}(?:\.[0-9]{1,6})?", value) is None:
        raise ParamError("mosdhcp_timeout", value, registry.expected("mosdhcp_timeout"))
    seconds = float(value)
    if not 0 < seconds <= MAX_TIMEOUT:
        raise ParamError("mosdhcp_timeout", value, registry.expected("mosdhcp_timeout"))
    b.dhcp = dataclasses.replace(b.dhcp, timeout=seconds)


def _prefer_private(value: str, b: _Builder) -> None:
    prefer = registry.truth("mosdhcp_prefer_private", value)
    b.dhcp = dataclasses.replace(b.dhcp, prefer_private=prefer)


def _bridge(value: str, b: _Builder) -> None:
    if value.lower() not in ("ovs", "linux", "auto"):
        raise ParamError("mosbridge", value, registry.expected("mosbridge"))
    b.bridge = cast(BridgeKind, value.lower())


def _firewall(value: str, b: _Builder) -> None:
    spec = cmdline_fw.firewall(value, b.sink)
    if spec is not None:
        b.firewall = spec


def _nat(value: str, b: _Builder) -> None:
    spec = cmdline_fw.nat(value, b.sink)
    if spec is not None:
        b.nat = spec


# --- dracut/kernel companions --------------------------------------------------


def _bootif(value: str, b: _Builder) -> None:
    m = _BOOTIF_RE.fullmatch(value)
    if m is None:
        raise ParamError("BOOTIF", value, registry.expected("BOOTIF"))
    try:
        b.bootif = v.mac("BOOTIF", m.group(1))
    except ParamError:
        raise ParamError("BOOTIF", value, registry.expected("BOOTIF") + " (unicast)") from None


def _ifname(value: str, b: _Builder) -> None:
    name, sep, hw = value.partition(":")
    if not sep:
        raise ParamError("ifname", value, registry.expected("ifname"))
    pair = (v.ifname("ifname", name), v.mac("ifname", hw))
    if pair in b.ifnames:
        return
    if any(n == pair[0] or m == pair[1] for n, m in b.ifnames):
        raise ParamError("ifname", value, "<name>:<mac> with a name and MAC not used yet")
    if name.startswith("eth"):
        b.sink.note(f"ifname={value}: eth* names can clash with the kernel's own names")
    b.ifnames.append(pair)


def _bond(value: str, b: _Builder) -> None:
    spec = cmdline_link.bond(value)
    taken = {n for other in b.bonds for n in (other.name, *other.slaves)}
    if spec.name in taken or taken & set(spec.slaves):
        raise ParamError("bond", value, "a bond whose name and slaves no other bond= uses")
    b.bonds.append(spec)


def _vlan(value: str, b: _Builder) -> None:
    spec = cmdline_link.vlan(value)
    if any(other.name == spec.name for other in b.vlans):
        raise ParamError("vlan", value, "a VLAN name no other vlan= uses")
    b.vlans.append(spec)


def _neednet(value: str, b: _Builder) -> None:
    b.neednet = registry.truth("rd.neednet", value or None)


def _peerdns(value: str, b: _Builder) -> None:
    b.peerdns = registry.truth("rd.peerdns", value)


def _use_bootif(value: str, b: _Builder) -> None:
    b.use_bootif = registry.truth("rd.bootif", value)


def _nameserver(value: str, b: _Builder) -> None:
    b.nameservers.append(v.nameserver("nameserver", value))


def _ip(value: str, b: _Builder) -> None:
    form = v.parse_ip(value, b.sink)
    b.ip_forms.append((value, form))
    b.nameservers.extend(form.nameservers)
    if form.hostname is not None:
        b.hostname = form.hostname
    if form.link is not None:
        b.link_settings.append(form.link)
    b.ip_off |= form.off


HANDLERS: dict[str, Callable[[str, _Builder], None]] = {
    "mosip4": _mosip4,
    "mosip6": _mosip6,
    "mosdhcp_timeout": _timeout,
    "mosdhcp_prefer_private": _prefer_private,
    "mosfirewall": _firewall,
    "mosnat": _nat,
    "mosbridge": _bridge,
    "BOOTIF": _bootif,
    "ifname": _ifname,
    "nameserver": _nameserver,
    "ip": _ip,
    "bond": _bond,
    "vlan": _vlan,
    "rd.neednet": _neednet,
    "rd.peerdns": _peerdns,
    "rd.bootif": _use_bootif,
}


# --- assembly ------------------------------------------------------------------


def parse(text: str | bytes | kcmdline.CmdLine) -> ParseResult:
    """Parse a whole command line; never raises (see the module docstring)."""
    b = _Builder()
    line = text if isinstance(text, kcmdline.CmdLine) else kcmdline.parse_line(text)
    for note in line.warnings:
        b.sink.note(note)
    for p in line.params:
        _dispatch(p, b)  # in order: a later valid occurrence replaces an earlier one
    _note_duplicates(line.params, b.sink)
    _merge_ip(b)
    return ParseResult(_freeze(b), tuple(b.sink.errors), tuple(b.sink.notes))


def _dispatch(p: kcmdline.Param, b: _Builder) -> None:
    entry = registry.lookup(p.key, "net")
    if entry is None:
        if p.key.startswith("mos") and p.key not in registry.PARAMETERS:
            b.sink.note(f"unknown parameter {shown(p.key)} ignored (typo?)")
        return
    try:
        registry.fits(entry, p)
        value = p.value or ""
        if kcmdline.undecodable(value):
            raise ParamError(p.key, value, entry.expected)
        HANDLERS[p.key](value, b)
    except ParamError as exc:
        b.sink.errors.append(exc)
    except Exception as exc:  # a bug here must cost one parameter, not the boot
        b.sink.error(p.key, p.value or "", f"{entry.expected} (internal error: {exc!r})")


def _note_duplicates(params: Iterable[kcmdline.Param], sink: v.Sink) -> None:
    counts: dict[str, int] = {}
    for p in params:
        entry = registry.lookup(p.key, "net")
        if entry is not None and not entry.repeatable:
            counts[p.key] = counts.get(p.key, 0) + 1
    for key, n in counts.items():
        if n > 1:
            sink.note(f"{key} given {n} times: the last valid one wins")


def _merge_ip(b: _Builder) -> None:
    """Apply the ip= forms: mos* params of the same family win, DHCP devices gather."""
    devices: list[str] = []
    dhcp_all = dhcp6 = False
    for raw, form in b.ip_forms:
        dhcp_all |= form.dhcp_all
        dhcp6 |= form.dhcp6
        if form.dhcp_device is not None and form.dhcp_device not in devices:
            devices.append(form.dhcp_device)
        if form.ip4 is not None:
            b.ip4 = _pick(b.ip4, form.ip4, b.mosip4_given, "mosip4", raw, b.sink)
        if form.ip6 is not None:
            b.ip6 = _pick(b.ip6, form.ip6, b.mosip6_given, "mosip6", raw, b.sink)
    if dhcp_all and devices:
        b.sink.note(f"ip=dhcp without interface: DHCP on all NICs, not only {','.join(devices)}")
    devs = () if dhcp_all else tuple(devices)
    b.dhcp = DhcpSpec(b.dhcp.timeout, b.dhcp.prefer_private, devs, dhcp6)


def _pick(current: S | None, new: S, mos_given: bool, mos_key: str, raw: str, sink: v.Sink) -> S:
    """The static address of one family: mosip4/6 if valid, else the last ip=."""
    family = "IPv4" if mos_key == "mosip4" else "IPv6"
    if current is not None and current.source == mos_key:
        sink.note(f"{mos_key} given: ignoring ip={raw} for {family}")
        return current
    if current is not None:
        sink.note(f"several static ip= for {family}: ip={raw} wins")
    elif mos_given:
        sink.note(f"{mos_key} invalid: using ip={raw} for {family}")
    return new


def _freeze(b: _Builder) -> NetConfig:
    seen: list[v.IpAddr] = []
    for ns in b.nameservers:
        if ns not in seen:
            seen.append(ns)
    return NetConfig(
        ip4=b.ip4,
        ip6=b.ip6,
        dhcp=b.dhcp,
        firewall=b.firewall,
        nat=b.nat,
        bridge=b.bridge,
        bootif=b.bootif,
        ifnames=tuple(b.ifnames),
        nameservers=tuple(seen),
        hostname=b.hostname,
        bonds=tuple(b.bonds),
        vlans=tuple(b.vlans),
        link_settings=tuple(b.link_settings),
        network=_network_wanted(b),
        peerdns=b.peerdns,
        use_bootif=b.use_bootif,
    )


def _network_wanted(b: _Builder) -> bool:
    """Off for ip=off|none or rd.neednet=0, unless an address or rd.neednet=1 asks for it."""
    if b.neednet is not None:
        if b.ip_off and b.neednet:
            b.sink.note("rd.neednet=1 given: ip=off ignored")
        return b.neednet
    if b.ip_off and (b.ip4 is not None or b.ip6 is not None):
        b.sink.note("ip=off ignored: a static address is given")
        return True
    return not b.ip_off


# --- reporting -----------------------------------------------------------------


def format_errors(errors: Iterable[ParamError]) -> tuple[str, ...]:
    """One line per error: ``mosip4: bad value '1.2.3', expected ...``."""
    return tuple(str(e) for e in errors)


def log_errors(errors: Iterable[ParamError], logger: logging.Logger) -> None:
    for line in format_errors(errors):
        logger.warning("cmdline: %s", line)


def log_result(result: ParseResult, logger: logging.Logger) -> None:
    """Notes at info, errors at warning: both go to kmsg/console via mosnet.base.log."""
    for note in result.notes:
        logger.info("cmdline: %s", note)
    log_errors(result.errors, logger)


__all__ = ["ParseResult", "parse", "format_errors", "log_errors", "log_result"]
