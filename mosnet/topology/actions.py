"""The steps of a network plan, as printable frozen dataclasses.

Each action says *what* should be true afterwards, never *how* to get there:
``mosnet.topology.netapply`` executes them with replace semantics (an existing bridge is
adjusted, an address is replaced, a missing link on undo is fine), so running
the same plan twice changes nothing. ``str(action)`` is one line in the style
of the iproute2 command that would do the same; it is what ``mosnet plan``
prints, what the golden files hold and what apply logs.

Nothing here imports pyroute2: a plan can be built and printed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Literal

IpAddress = IPv4Address | IPv6Address
IpInterface = IPv4Interface | IPv6Interface
IpNetwork = IPv4Network | IPv6Network


def _ipcmd(version: int) -> str:
    return "ip -6" if version == 6 else "ip"


@dataclass(frozen=True)
class CreateBridge:
    """A Linux bridge with STP off and no forward delay (no 30 s of silence)."""

    name: str
    mac: str  # set explicitly so the bridge never adopts the uplink's MAC

    def __str__(self) -> str:
        return f"ip link add {self.name} address {self.mac} type bridge stp_state 0 forward_delay 0"


@dataclass(frozen=True)
class CreateVeth:
    """The internal port of the Linux backend: ``name`` is the host side."""

    name: str
    peer: str  # the bridge side
    mac: str  # the uplink NIC's MAC, so the switch sees only that one

    def __str__(self) -> str:
        return f"ip link add {self.name} address {self.mac} type veth peer name {self.peer}"


@dataclass(frozen=True)
class SetMaster:
    dev: str
    master: str

    def __str__(self) -> str:
        return f"ip link set {self.dev} master {self.master}"


@dataclass(frozen=True)
class SetNoMaster:
    dev: str

    def __str__(self) -> str:
        return f"ip link set {self.dev} nomaster"


@dataclass(frozen=True)
class DeleteLink:
    """Remove a link if it exists (deleting one veth end removes both)."""

    name: str

    def __str__(self) -> str:
        return f"ip link del {self.name}"


@dataclass(frozen=True)
class ForgetLocalMac:
    """Drop the bridge's "local" FDB entry for an uplink port's own MAC.

    The Linux bridge delivers frames addressed to a port's MAC to the bridge
    device itself; the internal port owns that MAC, so the entry must go for
    unicast to reach it (the bridge then learns the MAC behind the port).
    """

    dev: str
    mac: str

    def __str__(self) -> str:
        return f"bridge fdb del {self.mac} dev {self.dev} master"


@dataclass(frozen=True)
class FlushAddresses:
    dev: str

    def __str__(self) -> str:
        return f"ip addr flush dev {self.dev}"


@dataclass(frozen=True)
class LinkUp:
    dev: str

    def __str__(self) -> str:
        return f"ip link set {self.dev} up"


@dataclass(frozen=True)
class Sysctl:
    key: str  # slash form below /proc/sys, e.g. net/ipv6/conf/public/accept_ra
    value: str

    def __str__(self) -> str:
        return f"sysctl {self.key}={self.value}"


@dataclass(frozen=True)
class AddAddress:
    dev: str
    address: IpInterface  # address with its prefix length
    lifetime: int | None = None  # seconds (a lease's remaining time); None: forever
    broadcast: IPv4Address | None = None

    def __str__(self) -> str:
        brd = f" broadcast {self.broadcast}" if self.broadcast is not None else ""
        lft = (
            ""
            if self.lifetime is None
            else f" valid_lft {self.lifetime} preferred_lft {self.lifetime}"
        )
        cmd = _ipcmd(self.address.version)
        return f"{cmd} addr replace {self.address}{brd} dev {self.dev}{lft}"


@dataclass(frozen=True)
class AddRoute:
    """A route, replaced if present; no gateway means a link-scope route."""

    dev: str
    dst: IpNetwork
    gateway: IpAddress | None = None
    onlink: bool = False  # the gateway is outside every prefix on dev (/32, /128)
    proto: Literal["static", "dhcp"] = "static"  # who put it there, as ``ip route`` shows

    def __str__(self) -> str:
        dst = "default" if self.dst.prefixlen == 0 else str(self.dst)
        via = f" via {self.gateway}" if self.gateway is not None else ""
        tail = " onlink" if self.onlink else ""
        if self.gateway is None:
            tail += " scope link"
        tail += " proto dhcp" if self.proto == "dhcp" else ""
        return f"{_ipcmd(self.dst.version)} route replace {dst}{via} dev {self.dev}{tail}"


@dataclass(frozen=True)
class SetMtu:
    dev: str
    mtu: int

    def __str__(self) -> str:
        return f"ip link set dev {self.dev} mtu {self.mtu}"


@dataclass(frozen=True)
class MacNatTable:
    """Linux bridge: the MAC NAT table (``mosnet.macnat.bridgenft``), loaded first.

    First, so that its guard already drops what the new bridge itself sends on
    coming up (IGMP reports from its own MAC) before the switch sees it.
    """

    uplink: str
    mac: str
    script: str  # the nft script that is loaded, as ``mosnet plan`` shows it

    def __str__(self) -> str:
        return (
            f"nft -f -: replace table bridge mosnet-macnat (what leaves {self.uplink}"
            f" carries {self.mac}; guests' MACs rewritten, unknown MACs dropped)"
        )


@dataclass(frozen=True)
class RequestLease:
    """DHCP mode: the lease is asked for on ``port``; its address and routes follow."""

    port: str
    fallback: str  # where it goes if the bridge could not be built

    def __str__(self) -> str:
        return (
            f"dhcp4: request a lease on {self.port} (on failure: on {self.fallback}); then its"
            " address, MTU and routes (option 121, else 3; a gateway outside the subnet"
            " gets an on-link host route first), lifetimes = the lease's"
        )


@dataclass(frozen=True)
class LoadFirewall:
    """``mosfirewall=``/``mosnat=``: mosnet's own nftables tables, one transaction."""

    tables: tuple[str, ...]  # "inet mosnet", "ip mosnet-nat", or "deleted ..."
    script: str  # as rendered for the planned uplink port

    def __str__(self) -> str:
        return f"nft -f -: replace {', '.join(self.tables) or 'nothing'} (one transaction)"


@dataclass(frozen=True)
class WriteResolvConf:
    path: str
    nameservers: tuple[IpAddress, ...]
    search: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [f"nameserver {s}" for s in self.nameservers]
        parts += [f"search {' '.join(self.search)}"] if self.search else []
        return f"write {self.path} ({', '.join(parts)})"


@dataclass(frozen=True)
class StartOvs:
    """ovsdb-server and ovs-vswitchd running under ``run_dir`` (left alone if they are)."""

    run_dir: str
    datapath: str

    def __str__(self) -> str:
        return f"start ovsdb-server, ovs-vswitchd in {self.run_dir} (datapath {self.datapath})"


@dataclass(frozen=True)
class OvsAddBridge:
    """br-mosnet on Open vSwitch: ``nic`` as port 1, internal ``port`` (``mac``) as port 2."""

    nic: str
    port: str
    mac: str
    run_dir: str
    datapath: str
    mtu: int = 1500  # the uplink's: requested for the internal port when not 1500

    def __str__(self) -> str:
        mtu = f" mtu_request={self.mtu}" if self.mtu != 1500 else ""
        return (
            f"ovs-vsctl --may-exist add-br br-mosnet fail_mode=secure datapath_type={self.datapath}"
            f" -- add-port {self.nic} ofport 1 -- add-port {self.port} type=internal"
            f" mac={self.mac}{mtu} ofport 2"
            f" -- set-controller punix:{self.run_dir}/br-mosnet.controller"
        )


@dataclass(frozen=True)
class OvsBaseFlows:
    """br-mosnet's base flows (``mosnet.ovs.ofrules``), replaced over OpenFlow."""

    run_dir: str

    def __str__(self) -> str:
        return (
            "openflow: replace br-mosnet's base flows (uplink <-> host port,"
            " ARP/NS to the proxy, unknown guests to the controller)"
        )


@dataclass(frozen=True)
class OvsDelBridge:
    run_dir: str

    def __str__(self) -> str:
        return "ovs-vsctl --if-exists del-br br-mosnet"


Action = (
    CreateBridge
    | CreateVeth
    | SetMaster
    | SetNoMaster
    | DeleteLink
    | ForgetLocalMac
    | FlushAddresses
    | LinkUp
    | Sysctl
    | AddAddress
    | AddRoute
    | SetMtu
    | MacNatTable
    | RequestLease
    | LoadFirewall
    | WriteResolvConf
    | StartOvs
    | OvsAddBridge
    | OvsBaseFlows
    | OvsDelBridge
)
