"""Bridge backends: which actions put the uplink NIC and the internal port on br-mosnet.

The seed's topology is an Open vSwitch bridge with the NIC as uplink (no IP)
and an OVS *internal* port ("public" in static mode, "mos" in DHCP mode) that
carries the NIC's MAC and the host address. The Linux-bridge backend has no
internal ports, so it uses a veth pair instead:

    NIC ── br-mosnet ── public-br ═veth═ public (NIC MAC, host address)

The bridge side (``<port>-br``), the bridge and the NIC get IPv6 disabled:
otherwise each would autoconfigure a link-local address, and the NIC's would
be the same as the one ``public`` derives from the same MAC (a DAD clash).
The bridge gets ``arp_ignore=8`` so only ``public`` answers ARP: the switch
must never see another MAC than the NIC's (Hetzner's MAC filter).

This module is pure (actions only); ``mosnet.netapply`` executes them.
"""

from __future__ import annotations

from typing import Protocol

from mosnet.actions import (
    Action,
    CreateBridge,
    CreateVeth,
    DeleteLink,
    FlushAddresses,
    ForgetLocalMac,
    LinkUp,
    SetMaster,
    SetNoMaster,
    Sysctl,
)
from mosnet.config import BridgeKind
from mosnet.discover import Nic
from mosnet.errors import MosnetError

BRIDGE = "br-mosnet"
PEER_SUFFIX = "-br"
OVS_ISSUE = "the Open vSwitch backend arrives with issue 6"


class BackendError(MosnetError):
    """The requested bridge backend cannot be used."""


def bridge_mac(mac: str) -> str:
    """The uplink MAC with the locally-administered bit flipped.

    A Linux bridge without an explicit MAC takes the lowest port MAC, which
    may be the NIC's; it would then swallow frames meant for the internal port.
    """
    first, _, rest = mac.lower().partition(":")
    return f"{int(first, 16) ^ 0x02:02x}:{rest}"


def no_ipv6(dev: str) -> Sysctl:
    return Sysctl(f"net/ipv6/conf/{dev}/disable_ipv6", "1")


class Backend(Protocol):
    name: str

    def bridge_actions(self, nic: Nic, port: str, mac: str) -> tuple[Action, ...]:
        """Bridge, internal ``port`` with ``mac``, ``nic`` as uplink, all up."""
        ...

    def undo_actions(self, nic: Nic, port: str) -> tuple[Action, ...]:
        """Tear it all down again and leave ``nic`` standalone and up."""
        ...


class LinuxBridge:
    name = "linux"

    def bridge_actions(self, nic: Nic, port: str, mac: str) -> tuple[Action, ...]:
        peer = port + PEER_SUFFIX
        return (
            CreateBridge(BRIDGE, bridge_mac(mac)),
            no_ipv6(BRIDGE),
            # The bridge has no address, but Linux answers ARP for any local
            # address on any link: it would hand out its own MAC for ours.
            Sysctl(f"net/ipv4/conf/{BRIDGE}/arp_ignore", "8"),
            CreateVeth(port, peer, mac),
            no_ipv6(peer),
            SetMaster(peer, BRIDGE),
            FlushAddresses(nic.name),  # the NIC is a pure L2 uplink: no IP on it
            no_ipv6(nic.name),
            SetMaster(nic.name, BRIDGE),
            ForgetLocalMac(nic.name, mac),
            LinkUp(nic.name),
            LinkUp(peer),
            LinkUp(BRIDGE),
            LinkUp(port),
        )

    def undo_actions(self, nic: Nic, port: str) -> tuple[Action, ...]:
        return (
            SetNoMaster(nic.name),
            DeleteLink(port),  # takes the bridge-side peer with it
            DeleteLink(BRIDGE),
            Sysctl(f"net/ipv6/conf/{nic.name}/disable_ipv6", "0"),
            LinkUp(nic.name),
        )


class OvsBridge:
    name = "ovs"

    def bridge_actions(self, nic: Nic, port: str, mac: str) -> tuple[Action, ...]:
        raise BackendError(f"mosbridge=ovs: {OVS_ISSUE}")

    def undo_actions(self, nic: Nic, port: str) -> tuple[Action, ...]:
        raise BackendError(f"mosbridge=ovs: {OVS_ISSUE}")


def select(kind: BridgeKind, ovs_available: bool = False) -> tuple[Backend, str | None]:
    """The backend for ``mosbridge=<kind>`` and a note explaining an automatic choice."""
    if kind == "ovs":
        return OvsBridge(), None
    if kind == "linux":
        return LinuxBridge(), None
    why = "Open vSwitch is not available" if not ovs_available else OVS_ISSUE
    return LinuxBridge(), f"mosbridge=auto: using the Linux bridge ({why})"
