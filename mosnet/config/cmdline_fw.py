"""``mosfirewall=`` and ``mosnat=``: a preset or mode, then port lists and forwards.

One bad token drops only itself (one port, one forward); an unusable preset
or mode drops the parameter, and with it the ports or forwards it carried.
"""

from __future__ import annotations

from typing import Literal, cast

from mosnet.base.errors import ParamError
from mosnet.config import cmdline_ip as v
from mosnet.config import registry
from mosnet.config.model import (
    FirewallPreset,
    FirewallSpec,
    NatSpec,
    PortForward,
    PortRange,
    Proto,
)

_FORWARD = "<ext-port>:<ipv4>:<port>/tcp|udp"


def firewall(value: str, sink: v.Sink) -> FirewallSpec | None:
    """One ``mosfirewall=``; None when the preset is unusable (bad ports drop alone)."""
    tokens = value.split(",")
    preset = tokens[0].lower()
    if preset not in ("ssh", "permissive", "none"):
        # No guessed fallback: a typo must not silently pick a policy.
        sink.error("mosfirewall", tokens[0], registry.expected("mosfirewall"))
    ports = _firewall_ports(tokens[1:], sink)
    if preset in ("ssh", "permissive", "none"):
        return FirewallSpec(cast(FirewallPreset, preset), ports["tcp"], ports["udp"])
    return None


def _firewall_ports(tokens: list[str], sink: v.Sink) -> dict[str, tuple[PortRange, ...]]:
    """``tcp:22,80,udp:53``: a ``proto:`` prefix applies until the next one."""
    ports: dict[str, list[PortRange]] = {"tcp": [], "udp": []}
    proto: str | None = None  # None before the first prefix or after a bad one
    orphans: list[str] = []  # ports after an unknown protocol: dropped with it
    for tok in tokens:
        body = tok
        if ":" in tok:
            prefix, _, body = tok.partition(":")
            proto = prefix.lower() if prefix.lower() in ports else "?"
            if proto == "?":
                sink.error("mosfirewall", tok, "tcp:<port> or udp:<port> (unknown protocol)")
                continue
        elif not tok:
            continue  # tolerate ",," and a trailing comma
        elif proto is None:
            sink.error("mosfirewall", tok, "tcp:<port> or udp:<port> before the first port")
            continue
        elif proto == "?":
            orphans.append(tok)
            continue
        _add_port(body, ports[proto], sink)
    if orphans:
        sink.note(f"mosfirewall: ports {','.join(orphans)} dropped with their bad protocol")
    return {k: tuple(v) for k, v in ports.items()}


def _add_port(tok: str, into: list[PortRange], sink: v.Sink) -> None:
    try:
        rng = v.port_range("mosfirewall", tok)
    except ParamError as exc:
        sink.errors.append(exc)
        return
    if rng not in into:
        into.append(rng)


def nat(value: str, sink: v.Sink) -> NatSpec | None:
    """One ``mosnat=``; None when the mode is unusable (bad forwards drop alone)."""
    tokens = value.split(",")
    mode = tokens[0].lower()
    spec: NatSpec | None = None
    if mode in ("snat", "none"):
        spec = NatSpec(cast(Literal["snat", "none"], mode))
    else:
        try:
            spec = NatSpec("iface", v.ifname("mosnat", tokens[0]))
        except ParamError:
            sink.error("mosnat", tokens[0], f"snat, none or {v.E_IFNAME}")
    forwards = _nat_forwards([t for t in tokens[1:] if t], sink)
    if spec is not None and spec.mode == "none" and forwards:
        sink.note("mosnat=none: port forwards ignored")
        forwards = ()
    return None if spec is None else NatSpec(spec.mode, spec.iface, forwards)


def _nat_forwards(tokens: list[str], sink: v.Sink) -> tuple[PortForward, ...]:
    out: list[PortForward] = []
    for tok in tokens:
        try:
            fwd = _forward(tok)
        except ParamError:
            sink.error("mosnat", tok, _FORWARD)
            continue
        if any(f.external_port == fwd.external_port and f.proto == fwd.proto for f in out):
            sink.error("mosnat", tok, f"{_FORWARD} with an external port not forwarded yet")
            continue
        out.append(fwd)
    return tuple(out)


def _forward(tok: str) -> PortForward:
    head, _, proto = tok.rpartition("/")
    parts = head.split(":")
    if proto.lower() not in ("tcp", "udp") or len(parts) != 3:
        raise ParamError("mosnat", tok, _FORWARD)
    ext = v.number("mosnat", parts[0], 1, 65535, _FORWARD)
    ip = v.host4("mosnat", parts[1])
    port = v.number("mosnat", parts[2], 1, 65535, _FORWARD)
    return PortForward(ext, ip, port, cast(Proto, proto.lower()))
