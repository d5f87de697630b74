"""The static strategy: find the NIC that reaches the gateway, plan, apply, announce.

Every step logs what it did; a failed apply has already been rolled back by
``netapply`` so the NIC carries the address directly and the machine stays
reachable.
"""

from __future__ import annotations

import os
import socket
import time

from pyroute2 import IPRoute

from mosnet.base import log, netif
from mosnet.base.names import STATIC_PORT
from mosnet.config.model import NetConfig
from mosnet.l2 import announce
from mosnet.netphase import links
from mosnet.netphase.outcome import Outcome, Uplink
from mosnet.ovs import vswitch
from mosnet.state.resolvconf import DnsInfo, ResolvConf
from mosnet.topology import netapply
from mosnet.topology.plan import plan
from mosnet.uplink import discover, gateway

CARRIER_TIMEOUT = 10.0
PROBE_TIMEOUT = 3.0
DAD_TIMEOUT = 5.0
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08

_log = log.get("static")


def _discover(cfg: NetConfig, include: tuple[str, ...]) -> links.Links:
    include += (cfg.device,) if cfg.device else ()
    found = links.set_up(cfg, include)
    nics = found.candidates
    if nics and not discover.wait_for_carrier(nics, CARRIER_TIMEOUT):
        _log.warning("no NIC has carrier after %.0f s; probing anyway", CARRIER_TIMEOUT)
    return found


def choose_nic(cfg: NetConfig, nics: tuple[discover.Nic, ...]) -> discover.Choice | None:
    """The named device, else the NIC whose gateway answers first (ARP, then NS)."""
    if cfg.device:
        _log.info("device %s named on the command line: no gateway probe", cfg.device)
        return discover.Choice(cfg.device, "named on the command line")
    names = [n.name for n in nics]
    if cfg.ip4 is not None and cfg.ip4.gateway is not None:
        found = gateway.find_gateway_nic(
            names, cfg.ip4.gateway, timeout=PROBE_TIMEOUT, sender_ip=cfg.ip4.address
        )
        if found is not None:
            why = f"gateway {cfg.ip4.gateway} answered ARP there first ({found.rtt * 1e3:.1f} ms)"
            _log.info(
                "gateway %s answers on %s in %.1f ms", cfg.ip4.gateway, found.nic, found.rtt * 1e3
            )
            return discover.Choice(found.nic, why)
    if cfg.ip6 is not None and cfg.ip6.gateway is not None:
        found6 = gateway.find_gateway_nic6(names, cfg.ip6.gateway, timeout=PROBE_TIMEOUT)
        if found6 is not None:
            why = f"gateway {cfg.ip6.gateway} answered the neighbour solicitation there first"
            _log.info("gateway %s answers on %s", cfg.ip6.gateway, found6.nic)
            return discover.Choice(found6.nic, why)
    _log.warning("no NIC got an answer from the gateway")
    return None


def _announce(cfg: NetConfig, out: Outcome) -> None:
    """Gratuitous ARP / unsolicited NA so the gateway learns us at once.

    One round on the boot path; the proxy announces again when it starts.
    """
    if out.port is None or out.uplink.mac is None:
        return
    mac = netif.mac_bytes(out.uplink.mac)
    if cfg.ip4 is not None:
        announce.gratuitous_arp(out.port, mac, cfg.ip4.address, count=1)
    if cfg.ip6 is not None:
        announce.unsolicited_na(out.port, mac, cfg.ip6.address, count=1)


def _tentative(ipr: object, dev: str) -> tuple[list[str], list[str]]:
    """(still tentative, DAD failed) IPv6 addresses on ``dev``."""
    idx = ipr.link_lookup(ifname=dev)  # type: ignore[attr-defined]
    if not idx:
        return [], []
    waiting, failed = [], []
    for msg in ipr.get_addr(family=socket.AF_INET6, index=idx[0]):  # type: ignore[attr-defined]
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        addr = str(msg.get_attr("IFA_ADDRESS"))
        if flags & IFA_F_DADFAILED:
            failed.append(addr)
        elif flags & IFA_F_TENTATIVE:
            waiting.append(addr)
    return waiting, failed


def wait_for_dad(dev: str, timeout: float = DAD_TIMEOUT) -> bool:
    """Wait until duplicate address detection has finished on ``dev`` (bounded).

    A tentative address cannot be used as a source yet, so IPv6 is not up
    before this. A duplicate is logged loudly: someone else has our address.
    """
    deadline = time.monotonic() + timeout
    with IPRoute() as ipr:
        while True:
            waiting, failed = _tentative(ipr, dev)
            for addr in failed:
                _log.error("duplicate address detected for %s on %s", addr, dev)
            if not waiting:
                return not failed
            if time.monotonic() >= deadline:
                _log.warning("DAD still running on %s after %.0f s: %s", dev, timeout, waiting)
                return False
            time.sleep(0.05)


def bring_up(cfg: NetConfig, run_dir: str, include: tuple[str, ...] = ()) -> Outcome:
    """``include`` names virtual links that count as NICs (tests use veths).

    ``nameserver=`` goes to ``<run_dir>/resolv.conf``: PID 1's real root is
    not mounted yet, and /run moves into it.
    """
    found = _discover(cfg, include)
    nics = found.candidates
    choice = choose_nic(cfg, nics)
    os.makedirs(run_dir, exist_ok=True)
    resolv_path = os.path.join(run_dir, "resolv.conf")
    the_plan = plan(
        cfg, nics, choice.name if choice else None, ovs_available=vswitch.available(),
        resolv_conf=resolv_path, links=found.stack,
    )  # fmt: skip
    for line in the_plan.render().splitlines():
        _log.info("plan: %s", line)
    applied = netapply.apply_plan(the_plan)
    nic = next((n for n in nics if n.name == the_plan.nic), None)
    port = STATIC_PORT if applied.ok else the_plan.nic
    dns = DnsInfo.of(cfg.nameservers, (), "written by mosnet (static)")
    out = Outcome(
        "static", the_plan, ResolvConf([resolv_path], v4=dns), applied,
        Uplink(the_plan.nic, nic.mac if nic else None, choice.reason if choice else ""),
        port, errors=found.errors + applied.errors,
    )  # fmt: skip
    if applied.ok or applied.rolled_back:
        if cfg.ip6 is not None and port is not None:
            wait_for_dad(port)
        _announce(cfg, out)
    for err in applied.errors:
        _log.error("static: %s", err)
    return out
