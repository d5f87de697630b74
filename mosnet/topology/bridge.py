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

This module is pure (actions only); ``mosnet.topology.netapply`` executes them.
"""

from __future__ import annotations

import os
from typing import Protocol

from mosnet.base.errors import MosnetError
from mosnet.base.names import BRIDGE, OVS_RUN_DIR, PEER_SUFFIX, bridge_mac
from mosnet.config.model import BridgeKind
from mosnet.topology.actions import (
    Action,
    CreateBridge,
    CreateVeth,
    DeleteLink,
    FlushAddresses,
    ForgetLocalMac,
    LinkUp,
    OvsAddBridge,
    OvsBaseFlows,
    OvsDelBridge,
    SetMaster,
    SetMtu,
    SetNoMaster,
    StartOvs,
    Sysctl,
)
from mosnet.uplink.discover import Nic


class BackendError(MosnetError):
    """The requested bridge backend cannot be used."""


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
        # The uplink's MTU end to end (ip=...:<mtu>, bond=...:<mtu>): nothing fragments.
        mtu = tuple(SetMtu(d, nic.mtu) for d in (port, peer, BRIDGE)) if nic.mtu != 1500 else ()
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
            *mtu,
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
    """Open vSwitch: the internal port is a real OVS internal port, no veth."""

    name = "ovs"

    def __init__(self, run_dir: str | None = None, datapath: str | None = None) -> None:
        # Environment overrides: tests on hosts without openvswitch.ko use the
        # userspace datapath, and a private run dir beside a system OVS.
        self.run_dir = run_dir or os.environ.get("MOSNET_OVS_RUN_DIR", OVS_RUN_DIR)
        self.datapath = datapath or os.environ.get("MOSNET_OVS_DATAPATH", "system")

    def bridge_actions(self, nic: Nic, port: str, mac: str) -> tuple[Action, ...]:
        return (
            StartOvs(self.run_dir, self.datapath),
            FlushAddresses(nic.name),  # the NIC is a pure L2 uplink: no IP on it
            no_ipv6(nic.name),
            OvsAddBridge(nic.name, port, mac, self.run_dir, self.datapath, nic.mtu),
            OvsBaseFlows(self.run_dir),  # fail_mode=secure: nothing passes before this
            LinkUp(nic.name),
            LinkUp(port),
        )

    def undo_actions(self, nic: Nic, port: str) -> tuple[Action, ...]:
        return (
            OvsDelBridge(self.run_dir),
            Sysctl(f"net/ipv6/conf/{nic.name}/disable_ipv6", "0"),
            LinkUp(nic.name),
        )


def select(kind: BridgeKind, ovs_available: bool = False) -> tuple[Backend, str | None]:
    """The backend for ``mosbridge=<kind>`` and a note explaining an automatic choice."""
    if kind == "ovs":
        return OvsBridge(), None
    if kind == "linux":
        return LinuxBridge(), None
    if ovs_available:
        return OvsBridge(), "mosbridge=auto: using Open vSwitch (found in the image)"
    return LinuxBridge(), "mosbridge=auto: using the Linux bridge (Open vSwitch is not available)"
