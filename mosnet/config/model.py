"""The network configuration mosnet works from, as frozen dataclasses.

``mosnet.config.cmdline`` fills it from the kernel command line (``mosip4=``,
``mosip6=``, ``ip=``, ``BOOTIF=`` ...); ``mosnet.topology.plan`` turns it plus the
discovered links into actions. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Literal

BridgeKind = Literal["auto", "ovs", "linux"]
Proto = Literal["tcp", "udp"]
FirewallPreset = Literal["ssh", "permissive", "none"]


@dataclass(frozen=True)
class Ip4Static:
    address: IPv4Address
    gateway: IPv4Address | None
    prefixlen: int  # from the dotted netmask; 32 = point-to-point (Hetzner)
    device: str | None = None  # explicit NIC: the gateway probe is skipped
    source: str = "mosip4"  # the parameter it came from: "mosip4" or "ip"

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.address}/{self.prefixlen}", strict=False)

    @property
    def gateway_on_link(self) -> bool:
        """False when the gateway lies outside the prefix (a /32): needs onlink."""
        return self.gateway is not None and self.gateway in self.network


@dataclass(frozen=True)
class Ip6Static:
    address: IPv6Address
    prefixlen: int
    gateway: IPv6Address | None  # may be link-local, e.g. fe80::1
    device: str | None = None
    source: str = "mosip6"


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int  # == first for a single port

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class FirewallSpec:
    preset: FirewallPreset
    tcp: tuple[PortRange, ...] = ()
    udp: tuple[PortRange, ...] = ()


@dataclass(frozen=True)
class PortForward:
    external_port: int
    internal_ip: IPv4Address
    internal_port: int
    proto: Proto


@dataclass(frozen=True)
class NatSpec:
    mode: Literal["none", "snat", "iface"]
    iface: str | None = None  # for mode "iface"
    forwards: tuple[PortForward, ...] = ()


@dataclass(frozen=True)
class DhcpSpec:
    timeout: float = 10.0  # total for the parallel probe, not per NIC
    prefer_private: bool = True
    devices: tuple[str, ...] = ()  # ip=<iface>:dhcp restricts the probe
    dhcp6: bool = False  # ip=dhcp6/either6: DHCPv6 even if the RA does not ask for it


# The index is the kernel's number for each (IFLA_BOND_MODE, IFLA_BOND_XMIT_HASH_POLICY).
BOND_MODES = (
    "balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb",
    "balance-alb",
)  # fmt: skip
XMIT_HASH_POLICIES = ("layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac")


@dataclass(frozen=True)
class BondSpec:
    """``bond=<name>:<slaves>:<options>:<mtu>`` (dracut); defaults as dracut's."""

    name: str
    slaves: tuple[str, ...] = ("eth0", "eth1")
    mode: str = "balance-rr"
    miimon: int = 100  # the kernel's 0 would never notice a dead link
    updelay: int = 0
    downdelay: int = 0
    lacp_rate: str = "slow"  # 802.3ad only: slow (30 s) or fast (1 s)
    xmit_hash_policy: str = "layer2"
    primary: str | None = None  # active-backup: the slave preferred when up
    mtu: int | None = None

    def options(self) -> str:
        """The options as ``ip link`` and ``/proc/net/bonding`` name them."""
        out = [f"mode {self.mode}", f"miimon {self.miimon}"]
        out += [f"updelay {self.updelay}"] if self.updelay else []
        out += [f"downdelay {self.downdelay}"] if self.downdelay else []
        out += [f"lacp_rate {self.lacp_rate}"] if self.mode == "802.3ad" else []
        if self.mode in ("balance-xor", "802.3ad", "balance-tlb", "balance-alb"):
            out.append(f"xmit_hash_policy {self.xmit_hash_policy}")
        out += [f"primary {self.primary}"] if self.primary else []
        return " ".join(out)


@dataclass(frozen=True)
class VlanSpec:
    """``vlan=<name>:<parent>``; the VLAN id comes from the name (dracut)."""

    name: str
    parent: str
    vid: int


@dataclass(frozen=True)
class LinkSetting:
    """MTU and MAC for one device, from ``ip=<dev>:...:<mtu>:<mac>``; None: unchanged."""

    device: str | None  # None: the uplink, whichever it turns out to be
    mtu: int | None = None
    mac: str | None = None


@dataclass(frozen=True)
class NetConfig:
    ip4: Ip4Static | None = None
    ip6: Ip6Static | None = None
    dhcp: DhcpSpec = field(default_factory=DhcpSpec)
    firewall: FirewallSpec | None = None  # None: not given on the command line
    nat: NatSpec | None = None
    bridge: BridgeKind = "auto"
    bootif: str | None = None  # MAC from BOOTIF=01-aa-bb-..., lower case with colons
    ifnames: tuple[tuple[str, str], ...] = ()  # ifname=<name>:<mac>
    nameservers: tuple[IPv4Address | IPv6Address, ...] = ()
    hostname: str | None = None  # from ip=...:<hostname>:...
    bonds: tuple[BondSpec, ...] = ()
    vlans: tuple[VlanSpec, ...] = ()
    link_settings: tuple[LinkSetting, ...] = ()
    network: bool = True  # False: ip=off|none or rd.neednet=0, and no network root
    peerdns: bool = True  # rd.peerdns=0: DNS servers from DHCP/RA are not used
    use_bootif: bool = True  # rd.bootif=0: BOOTIF= is ignored

    @property
    def mode(self) -> Literal["static", "dhcp"]:
        """Static as soon as an address is given, as in the seed."""
        return "static" if self.ip4 is not None or self.ip6 is not None else "dhcp"

    @property
    def device(self) -> str | None:
        """The NIC the user named, if any (mosip4 wins over mosip6)."""
        for ip in (self.ip4, self.ip6):
            if ip is not None and ip.device:
                return ip.device
        return None
