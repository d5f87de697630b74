"""DHCP mode end to end: probe every NIC at once, bridge the winner, lease on ``mos``.

The probe only collects offers; the NIC whose offer wins becomes the uplink
of ``br-mosnet`` and the lease is then requested on the internal port
``mos``, which carries that NIC's MAC, so the server sees the same client.
No offer is not fatal: the bridge is built on the first NIC with carrier and
the daemon keeps asking.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyroute2 import IPRoute

from mosnet import announce, daemon, discover, ipv6, log, macnat, netapply, netif, ovs
from mosnet.config import NetConfig
from mosnet.dhcp4 import apply
from mosnet.dhcp4 import probe as dhcp_probe
from mosnet.dhcp4.client import Client
from mosnet.dhcp4.lease import Lease
from mosnet.plan import DHCP_PORT, Plan, plan

CARRIER_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0  # for the second exchange, on mos

_log = log.get("dhcpmode")


@dataclass(frozen=True)
class DhcpResult:
    plan: Plan
    applied: netapply.ApplyResult | None
    port: str | None  # where the lease lives: mos, or the NIC after a rollback
    client: Client | None
    lease: Lease | None
    v6: ipv6.Ipv6State | None = None
    uplink_mac: str | None = None
    nic_reason: str = ""  # why the uplink was picked


def _candidates(cfg: NetConfig, include: tuple[str, ...]) -> tuple[discover.Nic, ...]:
    with IPRoute() as ipr:
        nics = discover.list_nics(ipr, include=include + cfg.dhcp.devices)
        if cfg.dhcp.devices:  # ip=<iface>:dhcp restricts the probe
            nics = tuple(n for n in nics if n.name in cfg.dhcp.devices)
        discover.bring_up(ipr, nics)
    if nics and not discover.wait_for_carrier(nics, CARRIER_TIMEOUT):
        _log.warning("no NIC has carrier after %.0f s", CARRIER_TIMEOUT)
    return nics


def choose_nic(cfg: NetConfig, nics: tuple[discover.Nic, ...]) -> discover.Choice | None:
    """The NIC with the preferred offer, else the first one with carrier."""
    names = [n.name for n in nics]
    found = dhcp_probe.probe(
        names, timeout=cfg.dhcp.timeout, prefer_private=cfg.dhcp.prefer_private
    )
    if found is not None:
        return discover.Choice(str(found.ifname), offer_reason(found, cfg.dhcp.prefer_private))
    linked = [n.name for n in nics if discover.has_carrier(n.name)] or names
    if not linked:
        return None
    _log.warning("no DHCP offer on any NIC; bridging %s and asking again on it", linked[0])
    return discover.Choice(linked[0], "no DHCP offer on any NIC: the first one with carrier")


def offer_reason(found: dhcp_probe.ProbeResult, prefer_private: bool) -> str:
    """``offer 10.0.0.5 from 10.0.0.1, 2 offer(s) on 2 NIC(s); RFC 1918 offers preferred``."""
    nics = len({ifname for ifname, _, _ in found.offers_seen}) or 1
    rule = "RFC 1918 offers preferred" if prefer_private else "the first offer wins"
    server = found.offer.server_id or "an unnamed server"
    seen = f"{len(found.offers_seen)} offer(s) on {nics} NIC(s)"
    return f"offer {found.yiaddr} from {server}, {seen}; {rule}"


def lease_on(port: str, run_dir: str) -> tuple[Client | None, Lease | None]:
    """Request the lease on ``port`` and apply it; the client goes to the daemon."""
    try:
        client = Client(port)
    except OSError as exc:
        _log.error("cannot open a DHCP socket on %s: %s", port, exc)
        return None, None
    lease = client.acquire(REQUEST_TIMEOUT)
    if lease is None:
        _log.warning("no DHCP lease on %s yet; the daemon keeps asking", port)
        return client, None
    apply.apply(lease, port, client.clock())
    # Tell the LAN at once where the address lives (switches, the gateway's ARP cache).
    # One round now; the proxy repeats it when the daemon starts.
    announce.gratuitous_arp(port, netif.interface_mac(port), lease.address, count=1)
    apply.write_lease(lease, port, run_dir)
    apply.maybe_set_hostname(lease.hostname)
    daemon.publish_dns(lease, run_dir)
    _log.info(
        "%s: %s/%d via %s, dns %s", port, lease.address, lease.prefixlen,
        ",".join(map(str, lease.routers)) or "-", ",".join(map(str, lease.dns)) or "-",
    )  # fmt: skip
    return client, lease


def bring_up(cfg: NetConfig, run_dir: str, include: tuple[str, ...] = ()) -> DhcpResult:
    nics = _candidates(cfg, include)
    choice = choose_nic(cfg, nics) if nics else None
    the_plan = plan(cfg, nics, choice.name if choice else None, ovs_available=ovs.available())
    for line in the_plan.render().splitlines():
        _log.info("plan: %s", line)
    if not the_plan.ok:
        return DhcpResult(the_plan, None, None, None, None)
    mac = macnat.enable(the_plan, nics)  # before the bridge comes up, as in static
    applied = netapply.apply(the_plan)
    port = DHCP_PORT if applied.ok else the_plan.nic
    if port is None:
        return DhcpResult(the_plan, applied, None, None, None)
    os.makedirs(run_dir, exist_ok=True)
    client, lease = lease_on(port, run_dir)
    v6 = start_ipv6(cfg, port, run_dir, lease)
    return DhcpResult(
        the_plan, applied, port, client, lease, v6, mac, choice.reason if choice else ""
    )


def start_ipv6(cfg: NetConfig, port: str, run_dir: str, lease: Lease | None) -> ipv6.Ipv6State:
    """SLAAC (the kernel, accept_ra=2), RA information and DHCPv6 when asked for."""
    v6 = ipv6.start(
        port, run_dir, want_dhcp6=cfg.dhcp.dhcp6, resolv_path=os.path.join(run_dir, "resolv.conf"),
        v4_dns=tuple(map(str, lease.dns)) if lease else (),
        v4_search=tuple(lease.search) if lease else (),
        defer=not cfg.dhcp.dhcp6,  # asked-for DHCPv6 (ip=dhcp6) stays on the boot path
    )  # fmt: skip
    _log.info("%s: IPv6 %s, dns %s", port, v6.mode, ",".join(map(str, v6.dns)) or "-")
    return v6
