"""Turn a NetConfig plus the discovered NICs into an ordered, printable plan.

Pure: no netlink, no files. The gateway probe (static mode) or the DHCP probe
has already run elsewhere; ``chosen`` is the NIC it picked. The plan carries
the actions, the rollback that keeps the machine reachable if applying fails
(undo the bridge, then put the address straight on the NIC), notes and errors.
A plan with errors has no actions: nothing is half-done on bad input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Literal

from mosnet.base.names import DHCP_PORT, STATIC_PORT
from mosnet.config.model import Ip4Static, Ip6Static, NetConfig
from mosnet.dhcp4.lease import Lease
from mosnet.macnat import nfttable
from mosnet.nft import nftrules
from mosnet.topology import bridge
from mosnet.topology.actions import (
    Action,
    AddAddress,
    AddRoute,
    LoadFirewall,
    MacNatTable,
    RequestLease,
    Sysctl,
    WriteResolvConf,
)
from mosnet.topology.lease import lease_actions
from mosnet.uplink.discover import Nic
from mosnet.uplink.linkstack import LinkAction, LinkStack

RESOLV_CONF = "/etc/resolv.conf"
DEFAULT4 = IPv4Network("0.0.0.0/0")
DEFAULT6 = IPv6Network("::/0")


@dataclass(frozen=True)
class Plan:
    """Every change a boot makes to the network, in order.

    ``actions`` build the bridge and the host addresses (with ``rollback``
    when one fails); ``lease`` follows on the DHCP port (the request, or the
    bound lease's address and routes); ``firewall`` comes last, whatever
    happened to the network.
    """

    mode: Literal["static", "dhcp"]
    nic: str | None = None  # the uplink
    backend: str = ""
    actions: tuple[Action, ...] = ()
    rollback: tuple[Action, ...] = ()  # run only when an action fails
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    lease: tuple[Action, ...] = ()
    firewall: LoadFirewall | None = None
    links: tuple[LinkAction, ...] = ()  # renames, bonds, VLANs: before the probe

    @property
    def ok(self) -> bool:
        return not self.errors

    def with_lease(self, lease: Lease, port: str, now: float) -> Plan:
        """The plan as it ran: the bound lease's own address and routes."""
        return dataclasses.replace(self, lease=lease_actions(lease, port, now))

    def steps(self) -> tuple[tuple[str, tuple[Action | LinkAction, ...]], ...]:
        """The numbered sections, in the order they run."""
        fw = (self.firewall,) if self.firewall is not None else ()
        return (
            ("links (before the probe):", self.links),
            ("actions:", self.actions),
            ("then, on the DHCP port:", self.lease),
            ("firewall (after the network, whatever happened to it):", fw),
        )

    def render(self) -> str:
        """The text ``mosnet plan`` prints and the golden files hold."""
        head = f"mode {self.mode}, uplink {self.nic or '-'}, backend {self.backend or '-'}"
        lines, n = [head], 0
        for title, actions in self.steps():
            if actions:
                lines.append(title)
                lines += [f"  {i:2d}. {a}" for i, a in enumerate(actions, n + 1)]
                n += len(actions)
        if self.rollback:
            lines.append("on failure (undo, then configure the NIC directly):")
            lines += [f"  {i:2d}. {a}" for i, a in enumerate(self.rollback, 1)]
        for title, items in (("notes:", self.notes), ("errors:", self.errors)):
            if items:
                lines.append(title)
                lines += [f"  - {s}" for s in items]
        return "\n".join(lines + self._scripts()) + "\n"

    def _scripts(self) -> list[str]:
        """The nft scripts behind the actions that load one, in full."""
        loads = [
            a for a in (*self.actions, self.firewall) if isinstance(a, MacNatTable | LoadFirewall)
        ]
        lines = ["nft scripts:"] if loads else []
        for a in loads:
            what = "MAC NAT" if isinstance(a, MacNatTable) else "firewall"
            lines.append(f"  {what}:")
            lines += [f"    {line}" if line else "" for line in a.script.splitlines()]
        return lines


def plan(
    cfg: NetConfig,
    nics: tuple[Nic, ...],
    chosen: str | None = None,
    *,
    ovs_available: bool = False,
    resolv_conf: str = RESOLV_CONF,
    links: LinkStack | None = None,
) -> Plan:
    """The ordered actions that bring up ``cfg`` on one of ``nics``.

    ``links`` is the link stack that ran before the probe (``nics`` are its
    candidates): printed first, with its notes.
    """
    the_plan = _network_plan(cfg, nics, chosen, ovs_available, resolv_conf)
    port = None if the_plan.nic is None else STATIC_PORT if cfg.mode == "static" else DHCP_PORT
    stack = links or LinkStack()
    return dataclasses.replace(
        the_plan, firewall=firewall_action(cfg, port), links=stack.actions,
        notes=config_notes(cfg) + stack.notes + the_plan.notes,
    )  # fmt: skip


def config_notes(cfg: NetConfig) -> tuple[str, ...]:
    """What the line changes beyond the actions: host name, DNS, BOOTIF, no network."""
    out = []
    if not cfg.network:
        out.append("ip=off or rd.neednet=0: PID 1 brings no network up (this is what it would do)")
    if cfg.hostname:
        dhcp = ", sent to the DHCP server" if cfg.mode == "dhcp" else ""
        out.append(f"host name {cfg.hostname} (ip=): set first{dhcp}")
    if not cfg.peerdns:
        out.append("rd.peerdns=0: DNS servers from DHCP and router advertisements left out")
    if cfg.mode == "dhcp" and cfg.bootif and cfg.use_bootif and not cfg.dhcp.devices:
        out.append(f"BOOTIF={cfg.bootif}: DHCP only on that NIC, or the bond or VLAN above it")
    return tuple(out)


def firewall_action(cfg: NetConfig, uplink: str | None) -> LoadFirewall | None:
    """``mosfirewall=``/``mosnat=`` as one load; masquerade planned on ``uplink``."""
    if cfg.firewall is None and cfg.nat is None:
        return None
    script = nftrules.render(cfg.firewall, cfg.nat, uplink=uplink)
    return LoadFirewall(nftrules.tables(cfg.firewall, cfg.nat), script)


def _network_plan(
    cfg: NetConfig,
    nics: tuple[Nic, ...],
    chosen: str | None,
    ovs_available: bool,
    resolv_conf: str,
) -> Plan:
    mode = cfg.mode
    nic, notes, errors = _pick_nic(cfg, nics, chosen)
    backend, why = bridge.select(cfg.bridge, ovs_available)
    notes += (why,) if why else ()
    if nic is None or errors:
        return Plan(mode, None, backend.name, notes=notes, errors=errors)
    port = STATIC_PORT if mode == "static" else DHCP_PORT
    try:
        setup = backend.bridge_actions(nic, port, nic.mac)
        undo = backend.undo_actions(nic, port)
    except bridge.BackendError as exc:
        return Plan(mode, nic.name, backend.name, notes=notes, errors=(str(exc),))
    macnat, macnat_notes = _macnat(nic, backend.name)
    setup, notes = macnat + setup, notes + macnat_notes
    if mode == "dhcp":
        return _dhcp_plan(nic, backend.name, setup, undo, notes)
    dns: tuple[Action, ...] = ()
    if cfg.nameservers:
        dns = (WriteResolvConf(resolv_conf, cfg.nameservers),)
    return Plan(
        mode,
        nic.name,
        backend.name,
        actions=setup + _static_ip(cfg, port) + dns,
        rollback=undo + _static_ip(cfg, nic.name) + dns,
        notes=notes + (f"host address on {port!r}, which carries the MAC of {nic.name}",),
    )


def _macnat(nic: Nic, backend: str) -> tuple[tuple[Action, ...], tuple[str, ...]]:
    """Linux bridge: the MAC NAT table first. Open vSwitch: its flows do it."""
    if backend != "linux":
        return (), ()
    try:
        script = nfttable.script(nfttable.render(nic.name, nic.mac))
    except nfttable.MacNatError as exc:
        return (), (f"MAC NAT not planned: {exc}",)
    return (MacNatTable(nic.name, nic.mac, script),), ()


def _dhcp_plan(
    nic: Nic,
    backend: str,
    setup: tuple[Action, ...],
    undo: tuple[Action, ...],
    notes: tuple[str, ...],
) -> Plan:
    slaac = Sysctl(f"net/ipv6/conf/{DHCP_PORT}/accept_ra", "2")  # IPv6 by SLAAC (seed)
    return Plan(
        "dhcp",
        nic.name,
        backend,
        actions=setup + (slaac,),
        rollback=undo + (Sysctl(f"net/ipv6/conf/{nic.name}/accept_ra", "2"),),
        notes=notes,
        lease=(RequestLease(DHCP_PORT, nic.name),),
    )


def _pick_nic(
    cfg: NetConfig, nics: tuple[Nic, ...], chosen: str | None
) -> tuple[Nic | None, tuple[str, ...], tuple[str, ...]]:
    """(uplink, notes, errors): named device, then the probe's pick, then BOOTIF."""
    by_name = {n.name: n for n in nics}
    known = ", ".join(by_name) or "none"
    devices = {ip.device for ip in (cfg.ip4, cfg.ip6) if ip is not None and ip.device}
    if len(devices) > 1:
        return (
            None,
            (),
            (f"mosip4 and mosip6 name different devices: {', '.join(sorted(devices))}",),
        )
    if cfg.device is not None:
        if cfg.device not in by_name:
            return (
                None,
                (),
                (f"device {cfg.device!r} from the command line not found (NICs: {known})",),
            )
        return by_name[cfg.device], (f"uplink {cfg.device}: named on the command line",), ()
    if chosen is not None:
        if chosen not in by_name:
            return None, (), (f"probed NIC {chosen!r} not found (NICs: {known})",)
        what = "gateway probe" if cfg.mode == "static" else "DHCP probe"
        return by_name[chosen], (f"uplink {chosen}: picked by the {what}",), ()
    if cfg.bootif is not None:
        match = [n for n in nics if n.mac.lower() == cfg.bootif.lower()]
        if not match:
            return None, (), (f"BOOTIF={cfg.bootif} matches no NIC (NICs: {known})",)
        return match[0], (f"uplink {match[0].name}: matches BOOTIF={cfg.bootif}",), ()
    if not nics:
        return None, (), ("no NIC found",)
    if cfg.mode == "static":
        return None, (), ("no NIC reaches the gateway",)
    return None, (), ("no NIC answered DHCP",)


def _static_ip(cfg: NetConfig, dev: str) -> tuple[Action, ...]:
    """Addresses and routes on ``dev``; used for ``public`` and for the fallback."""
    out: list[Action] = [
        # Static mode: no router advertisements, no SLAAC addresses next to ours.
        Sysctl(f"net/ipv6/conf/{dev}/accept_ra", "0"),
        Sysctl(f"net/ipv6/conf/{dev}/autoconf", "0"),
    ]
    if cfg.ip4 is not None:
        out += _ip4(cfg.ip4, dev)
    if cfg.ip6 is not None:
        out += _ip6(cfg.ip6, dev)
    return tuple(out)


def _ip4(ip: Ip4Static, dev: str) -> list[Action]:
    out: list[Action] = [AddAddress(dev, IPv4Interface(f"{ip.address}/{ip.prefixlen}"))]
    if ip.gateway is None:
        return out
    if ip.gateway_on_link:
        return out + [AddRoute(dev, DEFAULT4, ip.gateway)]
    # Point-to-point (/32): the gateway is in no prefix of ours, so tell the
    # kernel it is on this link, then route through it with "onlink".
    return out + [
        AddRoute(dev, IPv4Network(ip.gateway)),
        AddRoute(dev, DEFAULT4, ip.gateway, onlink=True),
    ]


def _ip6(ip: Ip6Static, dev: str) -> list[Action]:
    iface = IPv6Interface(f"{ip.address}/{ip.prefixlen}")
    out: list[Action] = [AddAddress(dev, iface)]
    gw = ip.gateway
    if gw is None:
        return out
    if gw.is_link_local or gw in iface.network:  # fe80::1 is on-link by definition
        return out + [AddRoute(dev, DEFAULT6, gw)]
    return out + [AddRoute(dev, IPv6Network(gw)), AddRoute(dev, DEFAULT6, gw, onlink=True)]
