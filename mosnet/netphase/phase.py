"""The network phase: one entry point from config to a running network, one outcome.

Static and DHCP mode are two strategies (``netphase.static``,
``netphase.dhcpmode``) that pick the uplink, build and apply the plan and
put the addresses on it; this module adds what both share: the ARP/NDP
proxy's spec and the firewall, which comes last (``mosnat=snat`` needs the
default route) and is applied whatever happened to the network.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from ipaddress import IPv4Address, IPv6Address

from mosnet.base import log
from mosnet.config.model import NetConfig
from mosnet.netphase import dhcpmode, static
from mosnet.netphase.outcome import Outcome, proxy_spec
from mosnet.nft import firewall

RUN_DIR = "/run/mosnet"
_log = log.get("network")


def bring_up(
    cfg: NetConfig,
    run_dir: str = RUN_DIR,
    include: tuple[str, ...] = (),
    timings: dict[str, float] | None = None,
) -> Outcome:
    """Network, then firewall; failures are in the outcome, never raised.

    ``include`` names virtual links that count as NICs (tests use veths);
    ``timings`` gets how long ``network`` and ``firewall`` took.
    """
    times = timings if timings is not None else {}
    if cfg.hostname:
        set_hostname(cfg.hostname)
    with log.step(_log, "network", times):
        out = _network(cfg, run_dir, include)
    with log.step(_log, "firewall", times):
        out = dataclasses.replace(out, firewall=set_up_firewall(cfg))
    return out


def set_hostname(name: str) -> bool:
    """The ``ip=`` host name, before DHCP (which then sends it and keeps it)."""
    try:
        socket.sethostname(name)
    except OSError as exc:
        _log.error("hostname %s not set: %s", name, exc.strerror or exc)
        return False
    _log.info("hostname set to %s (ip=)", name)
    return True


def _network(cfg: NetConfig, run_dir: str, include: tuple[str, ...]) -> Outcome:
    os.makedirs(run_dir, exist_ok=True)
    if cfg.mode == "static":
        out = static.bring_up(cfg, run_dir, include)
        if not out.plan.ok:
            _log.error("static network not configured: %s", "; ".join(out.plan.errors))
        addrs = [ip.address for ip in (cfg.ip4, cfg.ip6) if ip is not None]
        gws = [ip.gateway for ip in (cfg.ip4, cfg.ip6) if ip and ip.gateway]
        return dataclasses.replace(out, proxy=proxy_spec(out.plan, out.uplink.mac, addrs, gws))
    out = dhcpmode.bring_up(cfg, run_dir, include)
    if not out.plan.ok:
        _log.error("DHCP network not configured: %s", "; ".join(out.plan.errors))
    if out.lease is None:  # no lease is not fatal: the daemon keeps asking
        return out
    ours: list[IPv4Address | IPv6Address] = [out.lease.address]
    spec = proxy_spec(out.plan, out.uplink.mac, ours, out.lease.routers)
    return dataclasses.replace(out, proxy=spec)


def set_up_firewall(cfg: NetConfig) -> firewall.FirewallResult | None:
    """mosfirewall=/mosnat= once the network is up; None when neither is given."""
    if cfg.firewall is None and cfg.nat is None:
        _log.info("no mosfirewall= or mosnat=: nftables left alone")
        return None
    result = firewall.load(cfg)
    _log.info("firewall: applied %s", ", ".join(result.applied) or "nothing")
    return result
