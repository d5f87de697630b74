"""Render ``mosfirewall=``/``mosnat=`` as an nft script (pure, deterministic).

mosnet owns exactly two tables and never touches any other (podman,
tailscale, docker keep theirs; cf. router7 f835cdf):

* ``table inet mosnet-firewall`` -- input policy drop. Accepted: loopback;
  ICMPv6 ND/RA/MLD and ICMPv6 errors *by type, before conntrack* (ND is
  untracked); ct established/related (invalid is dropped); ICMPv4 errors and
  rate-limited echo-request (v4 and v6); DHCPv4 replies (udp 67->68);
  DHCPv6 replies from fe80::/10 (udp 547->546); the preset's TCP ports
  (``ssh`` 22, ``permissive`` 22,80,443) and the custom ``tcp:``/``udp:``
  ports and ranges. The rest is counted and dropped.
  Forward chain, policy **accept**: bridged frames do not traverse it anyway
  unless br_netfilter is loaded, and a drop here would be final for
  podman/tailscale/VM routing too (every base chain sees the packet). With
  NAT on a known uplink it drops only *new* connections entering from the
  uplink that were not DNAT'ed by a port forward (any table's DNAT counts):
  the internal side stays unreachable from outside except via forwards,
  replies and everything not coming from the uplink pass.
* ``table ip mosnet-nat`` -- IPv4 only on purpose: forwards target IPv4
  backends, IPv6 is routed without NAT, and family ``ip`` also works on
  kernels before 5.2 (no inet nat). Prerouting and output DNAT for
  ``fib daddr type local`` (any host address, so LAN peers and the host
  itself can use the external port: hairpin), masquerade on the uplink, and
  masquerade of every forwarded flow towards its backend so the backend
  always answers through the host (hairpin from its own LAN, and backends
  without a route back); the backend therefore sees the host's address.

``firewall=None``/``nat=None`` (parameter not given) render nothing for that
table: it is left as it is. ``mosfirewall=none`` without ports and
``mosnat=none`` delete mosnet's table. ``mosfirewall=none,tcp:...`` is the
seed's "full custom": the table with only the listed ports.

Every owned table is emitted as ``table X {}`` + ``delete table X`` + the
full definition, so one ``nft -f`` replaces it atomically and re-applying
yields the same ruleset.
"""

from __future__ import annotations

import re

from mosnet.config.model import FirewallSpec, NatSpec, PortForward, PortRange

FW_TABLE = "inet mosnet-firewall"
NAT_TABLE = "ip mosnet-nat"
PRESET_TCP: dict[str, tuple[int, ...]] = {"ssh": (22,), "permissive": (22, 80, 443), "none": ()}
# What the kernel accepts as an interface name, minus anything that could
# break out of an nft string.
_IFNAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,15}")

# ICMPv6 that must pass before the ct rules: ND/RA/MLD are untracked.
_ICMP6_EARLY = (
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "mld-listener-query",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
)
_ICMP4 = ("destination-unreachable", "time-exceeded", "parameter-problem")
_ECHO_LIMIT = "limit rate 20/second burst 50 packets"


def safe_ifname(name: str) -> bool:
    """True if ``name`` can be put into an nft string as it is."""
    return _IFNAME.fullmatch(name) is not None


def wants_table(firewall: FirewallSpec | None) -> bool:
    """``none`` without ports means no firewall table at all."""
    return firewall is not None and (
        firewall.preset != "none" or bool(firewall.tcp) or bool(firewall.udp)
    )


def nat_active(nat: NatSpec | None) -> bool:
    return nat is not None and nat.mode != "none"


def tables(firewall: FirewallSpec | None, nat: NatSpec | None) -> tuple[str, ...]:
    """The tables a load of ``firewall``/``nat`` replaces or deletes."""
    out: list[str] = []
    if firewall is not None:
        out.append(("" if wants_table(firewall) else "deleted ") + FW_TABLE)
    if nat is not None:
        out.append(("" if nat_active(nat) else "deleted ") + NAT_TABLE)
    return tuple(out)


def render(firewall: FirewallSpec | None, nat: NatSpec | None, *, uplink: str | None) -> str:
    """The whole nft script for one transaction ("" when nothing is managed).

    ``uplink`` is the masquerade interface, already resolved by the caller
    (None: unknown, masquerade and the forward-chain uplink guard are
    skipped; port forwards still apply). Raises ValueError on an uplink name
    that is not a plain interface name, so nothing can be injected.
    """
    if uplink is not None and not safe_ifname(uplink):
        raise ValueError(f"unsafe interface name {uplink!r}")
    parts: list[str] = []
    if firewall is not None:
        parts.append(render_firewall(firewall, nat, uplink=uplink))
    if nat is not None:
        parts.append(render_nat(nat, uplink=uplink))
    return "".join(parts)


def _replace(table: str, body: list[str] | None) -> str:
    """Create-if-missing, delete, redefine: one atomic replacement (or removal)."""
    head = f"table {table} {{}}\ndelete table {table}\n"
    if body is None:
        return head
    return head + f"table {table} {{\n" + "".join(f"{line}\n" for line in body) + "}\n"


def render_firewall(firewall: FirewallSpec, nat: NatSpec | None, *, uplink: str | None) -> str:
    if not wants_table(firewall):
        return f"# mosfirewall={firewall.preset}: no firewall table\n" + _replace(FW_TABLE, None)
    title = f"# mosfirewall={firewall.preset}: input policy drop\n"
    return title + _replace(FW_TABLE, _input_chain(firewall) + _forward_chain(nat, uplink))


def _input_chain(fw: FirewallSpec) -> list[str]:
    tcp = [PortRange(p, p) for p in PRESET_TCP[fw.preset]] + list(fw.tcp)
    rules = [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        '\t\tiif "lo" accept',
        "\t\t# ND, RA and MLD are untracked: accept them by type before conntrack",
        f"\t\ticmpv6 type {_set(_ICMP6_EARLY)} accept",
        "\t\tct state invalid drop",
        "\t\tct state { established, related } accept",
        f"\t\ticmp type {_set(_ICMP4)} accept",
        f"\t\ticmp type echo-request {_ECHO_LIMIT} accept",
        f"\t\ticmpv6 type echo-request {_ECHO_LIMIT} accept",
        "\t\t# DHCP renewals arrive over UDP (acquisition uses a packet socket)",
        "\t\tudp sport 67 udp dport 68 accept",
        "\t\tip6 saddr fe80::/10 udp sport 547 udp dport 546 accept",
    ]
    for proto, ports in (("tcp", _dedup(tcp)), ("udp", _dedup(list(fw.udp)))):
        if ports:
            rules.append(f"\t\t{proto} dport {_set([str(p) for p in ports])} accept")
    rules += ['\t\tcounter comment "dropped by policy"', "\t}"]
    return rules


def _forward_chain(nat: NatSpec | None, uplink: str | None) -> list[str]:
    head = ["\tchain forward {", "\t\ttype filter hook forward priority filter; policy accept;"]
    if not nat_active(nat) or uplink is None:
        note = "\t\t# accept all: routed and bridged traffic is not this firewall's business"
        return head + [note, "\t}"]
    return head + [
        f"\t\t# NAT router: only replies and port forwards enter from {uplink}",
        f'\t\tiifname "{uplink}" ct state {{ established, related }} accept',
        f'\t\tiifname "{uplink}" ct status dnat accept',
        f'\t\tiifname "{uplink}" counter drop',
        "\t}",
    ]


def render_nat(nat: NatSpec, *, uplink: str | None) -> str:
    if not nat_active(nat):
        return "# mosnat=none: no NAT table\n" + _replace(NAT_TABLE, None)
    title = f"# mosnat={nat.iface if nat.mode == 'iface' else nat.mode}: uplink {uplink or '-'}\n"
    body: list[str] = []
    if nat.forwards:
        body = _dnat_chain("prerouting", nat.forwards) + _dnat_chain("output", nat.forwards)
    return title + _replace(NAT_TABLE, body + _postrouting(nat.forwards, uplink))


def _dnat_chain(hook: str, forwards: tuple[PortForward, ...]) -> list[str]:
    # fib daddr type local: any address of the host, whichever side asks.
    # nft only knows the "dstnat" keyword for prerouting: output says -100.
    prio = "dstnat" if hook == "prerouting" else "-100"
    rules = [f"\tchain {hook} {{", f"\t\ttype nat hook {hook} priority {prio}; policy accept;"]
    for f in forwards:
        rules.append(
            f"\t\tfib daddr type local {f.proto} dport {f.external_port} "
            f"dnat to {f.internal_ip}:{f.internal_port}"
        )
    return rules + ["\t}"]


def _postrouting(forwards: tuple[PortForward, ...], uplink: str | None) -> list[str]:
    rules = [
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    ]
    if uplink is not None:
        rules.append(f'\t\toifname "{uplink}" masquerade')
    else:
        rules.append("\t\t# no uplink known: no masquerade")
    for f in forwards:
        # The backend must answer through the host: hairpin and no-route-back.
        rules.append(
            f"\t\tip daddr {f.internal_ip} {f.proto} dport {f.internal_port} "
            "ct status dnat masquerade"
        )
    return rules + ["\t}"]


def _set(items: tuple[str, ...] | list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _dedup(ports: list[PortRange]) -> list[PortRange]:
    """Sorted, with overlapping or adjacent ranges merged: nft rejects overlaps."""
    out: list[PortRange] = []
    for p in sorted(ports, key=lambda r: (r.first, r.last)):
        if out and p.first <= out[-1].last + 1:
            out[-1] = PortRange(out[-1].first, max(out[-1].last, p.last))
        else:
            out.append(p)
    return out
