"""The DHCP strategy: probe every NIC at once, bridge the winner, lease on ``mos``.

The probe only collects offers; the NIC whose offer wins becomes the uplink
of ``br-mosnet`` and the lease is then requested on the internal port
``mos``, which carries that NIC's MAC, so the server sees the same client.
No offer is not fatal: the bridge is built on the first NIC with carrier and
the daemon keeps asking.
"""

from __future__ import annotations

import dataclasses
import os

from mosnet.base import log
from mosnet.base.names import DHCP_PORT
from mosnet.config.model import NetConfig
from mosnet.daemon.leasekeeper import LeaseKeeper, resolv_targets
from mosnet.dhcp4 import fsm
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.lease import Lease
from mosnet.ipv6 import autoconf
from mosnet.netphase import links
from mosnet.netphase.outcome import Outcome, Uplink
from mosnet.ovs import vswitch
from mosnet.state.resolvconf import DnsInfo, ResolvConf
from mosnet.topology import netapply
from mosnet.topology.plan import plan
from mosnet.uplink import discover, offers

CARRIER_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0  # for the second exchange, on mos

_log = log.get("dhcpmode")


def _candidates(cfg: NetConfig, include: tuple[str, ...]) -> links.Links:
    found = links.set_up(cfg, include + cfg.dhcp.devices)
    nics = probed(cfg, found)
    if nics and not discover.wait_for_carrier(nics, CARRIER_TIMEOUT):
        _log.warning("no NIC has carrier after %.0f s", CARRIER_TIMEOUT)
    return dataclasses.replace(found, candidates=nics)


def probed(cfg: NetConfig, found: links.Links) -> tuple[discover.Nic, ...]:
    """Who takes part in the offer race: the ``ip=<iface>:dhcp`` devices, else BOOTIF's
    uplink (as dracut: only the NIC the firmware booted from), else every candidate."""
    nics = found.candidates
    if cfg.dhcp.devices:
        return tuple(n for n in nics if n.name in cfg.dhcp.devices)
    boot = links.bootif_uplink(cfg, found)
    if boot is not None:
        _log.info("BOOTIF=%s: DHCP on %s only (rd.bootif=0 probes all)", cfg.bootif, boot)
        return tuple(n for n in nics if n.name == boot)
    if cfg.bootif is not None and cfg.use_bootif:
        _log.warning("BOOTIF=%s matches no NIC: DHCP on all of them", cfg.bootif)
    return nics


def choose_nic(cfg: NetConfig, nics: tuple[discover.Nic, ...]) -> discover.Choice | None:
    """The NIC with the preferred offer, else the first one with carrier."""
    names = [n.name for n in nics]
    found = offers.probe(names, timeout=cfg.dhcp.timeout, prefer_private=cfg.dhcp.prefer_private)
    if found is not None:
        return discover.Choice(str(found.ifname), offer_reason(found, cfg.dhcp.prefer_private))
    linked = [n.name for n in nics if discover.has_carrier(n.name)] or names
    if not linked:
        return None
    _log.warning("no DHCP offer on any NIC; bridging %s and asking again on it", linked[0])
    return discover.Choice(linked[0], "no DHCP offer on any NIC: the first one with carrier")


def offer_reason(found: offers.ProbeResult, prefer_private: bool) -> str:
    """``offer 10.0.0.5 from 10.0.0.1, 2 offer(s) on 2 NIC(s); RFC 1918 offers preferred``."""
    nics = len({ifname for ifname, _, _ in found.offers_seen}) or 1
    rule = "RFC 1918 offers preferred" if prefer_private else "the first offer wins"
    server = found.offer.server_id or "an unnamed server"
    seen = f"{len(found.offers_seen)} offer(s) on {nics} NIC(s)"
    return f"offer {found.yiaddr} from {server}, {seen}; {rule}"


def lease_on(
    port: str, run_dir: str, resolv: ResolvConf, hostname: str | None = None
) -> tuple[Client | None, Lease | None]:
    """Request the lease on ``port`` and bind it; the client goes to the daemon.

    ``hostname`` (from ``ip=``) goes out in option 12, on renewals too.
    """
    try:
        client = Client(port, config=ClientConfig(machine=fsm.Config(hostname=hostname)))
    except OSError as exc:
        _log.error("cannot open a DHCP socket on %s: %s", port, exc)
        return None, None
    lease = client.acquire(REQUEST_TIMEOUT)
    if lease is None:
        _log.warning("no DHCP lease on %s yet; the daemon keeps asking", port)
        return client, None
    LeaseKeeper(client, run_dir, resolv).on_bind(lease)
    return client, lease


def bring_up(cfg: NetConfig, run_dir: str, include: tuple[str, ...] = ()) -> Outcome:
    found = _candidates(cfg, include)
    nics = found.candidates
    choice = choose_nic(cfg, nics) if nics else None
    the_plan = plan(cfg, nics, choice.name if choice else None,
                    ovs_available=vswitch.available(), links=found.stack)  # fmt: skip
    for line in the_plan.render().splitlines():
        _log.info("plan: %s", line)
    static = DnsInfo.of(cfg.nameservers, (), "nameserver= on the command line")
    resolv = ResolvConf(resolv_targets(run_dir), static=static, peer=cfg.peerdns)
    nic = next((n for n in nics if n.name == the_plan.nic), None)
    uplink = Uplink(the_plan.nic, nic.mac if nic else None, choice.reason if choice else "")
    if not the_plan.ok:
        errors = found.errors + the_plan.errors
        return Outcome("dhcp", the_plan, resolv, uplink=Uplink(), errors=errors)
    applied = netapply.apply_plan(the_plan)
    port = DHCP_PORT if applied.ok else the_plan.nic
    errors = found.errors + applied.errors
    out = Outcome("dhcp", the_plan, resolv, applied, uplink, port, errors=errors)
    if port is None:
        return out
    os.makedirs(run_dir, exist_ok=True)
    client, lease = lease_on(port, run_dir, resolv, cfg.hostname)
    if client is not None and lease is not None:
        the_plan = the_plan.with_lease(lease, port, client.clock())
    v6 = start_ipv6(cfg, port, run_dir, resolv)
    return dataclasses.replace(out, plan=the_plan, client=client, lease=lease, v6=v6)


def start_ipv6(cfg: NetConfig, port: str, run_dir: str, resolv: ResolvConf) -> autoconf.Ipv6State:
    """SLAAC (the kernel, accept_ra=2), RA information and DHCPv6 when asked for."""
    v6 = autoconf.start(
        port, run_dir, want_dhcp6=cfg.dhcp.dhcp6, resolv=resolv,
        defer=not cfg.dhcp.dhcp6,  # asked-for DHCPv6 (ip=dhcp6) stays on the boot path
    )  # fmt: skip
    _log.info("%s: IPv6 %s, dns %s", port, v6.mode, ",".join(map(str, v6.dns)) or "-")
    return v6
