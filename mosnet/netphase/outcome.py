"""What the network phase did, as one frozen record for PID 1, state.json and the daemon."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from mosnet.base import netif
from mosnet.daemon.proxyproc import ProxySpec
from mosnet.dhcp4.client import Client
from mosnet.dhcp4.lease import Lease
from mosnet.ipv6.autoconf import Ipv6State
from mosnet.nft.firewall import FirewallResult
from mosnet.proxy.answers import ProxyConfig
from mosnet.state.resolvconf import ResolvConf
from mosnet.topology.netapply import ApplyResult
from mosnet.topology.plan import Plan

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Uplink:
    """The NIC the network goes through, and why that one."""

    nic: str | None = None
    mac: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Outcome:
    """One boot's network: the plan as it ran and the live objects the daemon takes over.

    ``client``, ``v6`` and ``resolv`` are live (sockets, threads' shared
    state); everything else is a record. ``port`` is where the host
    addresses live: the bridge's internal port, or the NIC after a rollback.
    """

    mode: str
    plan: Plan
    resolv: ResolvConf
    applied: ApplyResult | None = None
    uplink: Uplink = Uplink()
    port: str | None = None
    client: Client | None = None
    lease: Lease | None = None
    v6: Ipv6State | None = None
    proxy: ProxySpec | None = None
    firewall: FirewallResult | None = None
    errors: tuple[str, ...] = ()

    @property
    def backend(self) -> str:
        return self.plan.backend


def proxy_spec(
    plan: Plan, mac: str | None, addrs: Sequence[IPAddress], gateways: Sequence[IPAddress]
) -> ProxySpec | None:
    """ARP/NDP answers with the NIC MAC for our addresses, never for a gateway."""
    if plan.nic is None or mac is None:
        return None
    v4 = frozenset(a for a in addrs if isinstance(a, IPv4Address))
    v6 = frozenset(a for a in addrs if isinstance(a, IPv6Address))
    cfg = ProxyConfig(netif.mac_bytes(mac), v4, v6, frozenset(gateways))
    return ProxySpec(plan.nic, cfg, backend="ovs" if plan.backend == "ovs" else "linux")
