"""Apply mosnet's nftables tables: validate, then one atomic transaction.

``load(cfg)`` renders ``mosnet-firewall`` and ``mosnet-nat`` (see
:mod:`mosnet.nft.nftrules` for exactly what they allow), checks the script with
``nft -c -f -`` and loads it with a single ``nft -f -``: the kernel applies
the whole file or nothing, so a rejected script leaves the previous ruleset
in place. Tables mosnet does not own are never named, hence never touched.

Firewall rules: input policy drop (loopback, ND/RA/MLD and ICMP errors,
established/related, rate-limited ping, DHCPv4/DHCPv6 replies, the preset's
and custom ports). Forward chain policy accept (bridged frames only see it
with br_netfilter); with NAT on a known uplink it drops new connections from
the uplink unless a port forward DNAT'ed them.

Failures never leave the host open because of NAT: when the combined script
is rejected, the firewall table alone is tried (the old NAT table, if any,
stays as it was). An unknown or missing uplink is logged by name and only
skips masquerade; port forwards and the firewall still apply.

``net.ipv4.ip_forward=1`` is written only when a NAT table was applied.
IPv6 forwarding is never touched: NAT is IPv4-only, and IPv6 forwarding=1
would stop the uplink from accepting RAs (SLAAC) at accept_ra=1.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass

from mosnet.base import children, log
from mosnet.config.model import FirewallSpec, NatSpec, NetConfig
from mosnet.nft import nftrules

_log = log.get("firewall")
# The last one is the append image's private copy (initramfs/append.py).
NFT_PATHS = ("/usr/sbin/nft", "/sbin/nft", "/usr/lib/mosnet/bin/nft")
_TIMEOUT = 30.0


@dataclass(frozen=True)
class FirewallResult:
    applied: tuple[str, ...] = ()  # "inet mosnet-firewall", "deleted ip mosnet-nat", ...
    errors: tuple[str, ...] = ()
    sysctls: tuple[str, ...] = ()  # written, e.g. "net.ipv4.ip_forward=1"
    uplink: str | None = None  # the masquerade interface used, if any
    script: str = ""  # what nft loaded ("" if nothing was loaded)

    @property
    def ok(self) -> bool:
        return not self.errors


def find_nft() -> str | None:
    for path in NFT_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("nft")


def default_route_iface() -> str | None:
    """The interface of the best IPv4 default route in the main table, or None."""
    try:
        from pyroute2 import IPRoute  # only here: the rest of the module is stdlib

        with IPRoute() as ipr:
            routes = list(ipr.get_routes(family=socket.AF_INET))
    except Exception as exc:  # pyroute2 raises a zoo; None means "unknown"
        _log.warning("firewall: default route lookup failed: %s", exc)
        return None
    best: tuple[int, int] | None = None
    for route in routes:
        if route.get("dst_len") != 0 or (route.get_attr("RTA_TABLE") or 254) != 254:
            continue
        oif = route.get_attr("RTA_OIF") or _first_hop(route.get_attr("RTA_MULTIPATH"))
        prio = route.get_attr("RTA_PRIORITY") or 0
        if oif and (best is None or prio < best[0]):
            best = (prio, oif)
    return _ifname(best[1]) if best else None


def _first_hop(hops: object) -> int | None:
    if isinstance(hops, list) and hops:
        oif = hops[0].get("oif")
        return oif if isinstance(oif, int) else None
    return None


def _ifname(index: int) -> str | None:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


def _exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)  # the caller's netns, unlike a /sys path
        return True
    except OSError:
        return False


def resolve_uplink(nat: NatSpec | None, uplink: str | None, errors: list[str]) -> str | None:
    """The masquerade interface, or None (logged) when it cannot be used."""
    if nat is None or not nftrules.nat_active(nat):
        return None
    name = nat.iface if nat.mode == "iface" else uplink or default_route_iface()
    skip = "masquerade skipped, port forwards and firewall still applied"
    if name is None:
        errors.append(f"mosnat=snat: no IPv4 default route; {skip}")
        return None
    if not nftrules.safe_ifname(name):
        errors.append(f"mosnat: bad interface name {name!r}; {skip}")
        return None
    if not _exists(name):
        errors.append(f"mosnat: interface {name} not found; {skip}")
        return None
    return name


def load(
    cfg: NetConfig,
    *,
    uplink: str | None = None,
    nft: str | None = None,
    procsys: str = "/proc/sys",
) -> FirewallResult:
    """Load the firewall/NAT of ``cfg`` in one transaction. Never raises.

    ``uplink`` is the default-route interface for ``mosnat=snat`` if the
    caller knows it (else it is looked up); ``mosnat=<iface>`` names its own.
    """
    try:
        result = _load_tables(cfg, uplink, nft, procsys)
    except Exception as exc:  # PID 1 must survive anything here
        result = FirewallResult(errors=(f"firewall: unexpected failure: {exc!r}",))
    for err in result.errors:
        _log.error("%s", err)
    for what in result.applied:
        _log.info("firewall: applied %s", what)
    for sysctl in result.sysctls:
        _log.info("firewall: set %s", sysctl)
    return result


def _load_tables(
    cfg: NetConfig, uplink: str | None, nft: str | None, procsys: str
) -> FirewallResult:
    if cfg.firewall is None and cfg.nat is None:
        return FirewallResult()  # neither parameter given: mosnet manages nothing
    errors: list[str] = []
    nft = nft or find_nft()
    if nft is None:
        return FirewallResult(errors=("firewall: nft not found; firewall and NAT not applied",))
    up = resolve_uplink(cfg.nat, uplink, errors)
    attempts: list[tuple[FirewallSpec | None, NatSpec | None]] = [(cfg.firewall, cfg.nat)]
    if cfg.firewall is not None and cfg.nat is not None:
        attempts.append((cfg.firewall, None))  # never lose the firewall over NAT
    for fw, nat in attempts:
        script = nftrules.render(fw, nat, uplink=up)
        err = _load(nft, script)
        if err is not None:
            errors.append(f"firewall: nft rejected {_describe(fw, nat)}, kept the old one: {err}")
            continue
        sysctls = _enable_forwarding(procsys, errors) if nftrules.nat_active(nat) else ()
        return FirewallResult(nftrules.tables(fw, nat), tuple(errors), sysctls, up, script)
    return FirewallResult((), tuple(errors), (), up, "")


def _load(nft: str, script: str) -> str | None:
    """Check, then load ``script`` as one transaction; the error text or None."""
    for argv in ([nft, "-c", "-f", "-"], [nft, "-f", "-"]):
        ran = children.run(argv, timeout=_TIMEOUT, stdin=script)
        if ran.failure is not None:
            return f"{argv[0]}: {ran.error}"
        if ran.returncode != 0:
            return " | ".join(ran.said.splitlines()[-6:]) or f"exit status {ran.returncode}"
    return None


def _describe(fw: FirewallSpec | None, nat: NatSpec | None) -> str:
    names = [t for t, spec in (("the firewall", fw), ("NAT", nat)) if spec is not None]
    return " and ".join(names) + " ruleset"


def _enable_forwarding(procsys: str, errors: list[str]) -> tuple[str, ...]:
    path = os.path.join(procsys, "net", "ipv4", "ip_forward")
    try:
        with open(path, "w") as fh:
            fh.write("1\n")
    except OSError as exc:
        errors.append(f"firewall: cannot enable IPv4 forwarding ({path}): {exc}")
        return ()
    return ("net.ipv4.ip_forward=1",)
