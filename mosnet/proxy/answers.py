"""ARP/NDP proxy decisions: which request gets which reply (issue 6 section 4).

The Hetzner problem: the provider's switch accepts only the NIC's own MAC
(the "NAT MAC"), so the host and guest addresses living behind ``br-mosnet``
must be claimed on the wire by that MAC. ``decide`` looks at one received
frame and returns the reply to send, or None. It is pure, so every rule below
is unit-tested byte by byte; the socket loop lives in ``mosnet.proxy.proxyd``.

Rules (metallb layer2 and RFC 826/5227/4861, see research section 3):

* only ARP *requests* and Neighbor Solicitations; ARP replies, gratuitous
  ARPs (sender IP == target IP) and NAs never get an answer;
* only for configured addresses, and never for a gateway, even if it is
  misconfigured into the address set: poisoning the gateway entry of every
  neighbour is the classic proxy-ARP outage;
* only frames broadcast (ARP), to the solicited-node group (NS) or unicast to
  the NAT MAC; a request unicast to another MAC is someone else's business;
* NS per RFC 4861 7.1.1 (hop limit 255, code 0, checksum, options) and with an
  SLLAO unless the source is :: (we need a MAC to answer to; metallb's rule);
* never a frame from the NAT MAC itself, nor one asking for a multicast or
  zero MAC to be answered to.

Duplicate address detection for a configured address (ARP probe from
0.0.0.0, NS from ::) *is* answered, the way the kernel defends an address it
owns: the other machine's DAD then fails and it does not take our address.
Staying silent would let it configure the address and split traffic between
us. The ARP defence is a reply from the target to the prober's MAC (what
Linux sends); the NDP one is the RFC 4861 7.2.4 answer to ::, an NA to
ff02::1 with S=0, O=1. Our own guests' DAD never reaches ``decide``: it
leaves through the NIC as an outgoing frame, which the loop skips.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import frames, nd


@dataclass(frozen=True)
class ProxyConfig:
    nat_mac: bytes  # the NIC's MAC, the only one the provider lets through
    v4: frozenset[IPv4Address]
    v6: frozenset[IPv6Address]
    gateways: frozenset[IPv4Address | IPv6Address]

    def __post_init__(self) -> None:
        if not _unicast_mac(self.nat_mac):
            raise ValueError(f"NAT MAC must be a unicast 6-byte MAC, got {self.nat_mac!r}")

    @cached_property  # decide() runs per frame: no set difference each time
    def answered4(self) -> frozenset[IPv4Address]:
        return self.v4 - self.gateways

    @cached_property
    def answered6(self) -> frozenset[IPv6Address]:
        return self.v6 - self.gateways


def _unicast_mac(mac: bytes) -> bool:
    return len(mac) == 6 and not mac[0] & 1 and mac != frames.ZERO_MAC


NO_GUESTS: frozenset[IPv4Address | IPv6Address] = frozenset()


def decide(
    frame: bytes,
    cfg: ProxyConfig,
    *,
    check_sum: bool = True,
    guests: Container[IPv4Address | IPv6Address] = NO_GUESTS,
) -> bytes | None:
    """The reply frame for ``frame``, or None; never raises for any bytes.

    ``check_sum=False`` for NS frames whose ICMPv6 checksum the kernel left to
    offload (``TP_STATUS_CSUMNOTREADY``): then there is nothing to verify.
    ``guests`` are learned guest addresses (``mosnet.macnat.guests``), answered like
    configured ones, except a gateway.
    """
    try:
        eth = frames.Ethernet.decode(frame)
        if eth.src == cfg.nat_mac:  # our own frame, looped back by a bridge or switch
            return None
        if eth.ethertype == frames.ETH_P_ARP:
            return _arp(eth, cfg, guests)
        if eth.ethertype == frames.ETH_P_IPV6:
            return _ns(eth, cfg, check_sum, guests)
    except frames.FrameError:
        pass
    return None


def _answered(ip: IPv4Address | IPv6Address, cfg: ProxyConfig, guests: Container[object]) -> bool:
    mine = cfg.answered4 if isinstance(ip, IPv4Address) else cfg.answered6
    return ip in mine or (ip in guests and ip not in cfg.gateways)


def _arp(eth: frames.Ethernet, cfg: ProxyConfig, guests: Container[object]) -> bytes | None:
    arp = frames.Arp.decode(eth.payload)
    if arp.op != frames.ARP_REQUEST or arp.is_gratuitous:
        return None
    if eth.dst not in (frames.BROADCAST_MAC, cfg.nat_mac):
        return None
    if not _unicast_mac(arp.sha) or arp.sha == cfg.nat_mac:
        return None
    if not _answered(arp.tpa, cfg, guests):
        return None
    # a probe (sender 0.0.0.0) gets tpa 0.0.0.0 back: RFC 5227 2.1.1 conflict
    return frames.arp_reply(cfg.nat_mac, arp.tpa, arp.sha, arp.spa).frame(dst=arp.sha)


def _ns(
    eth: frames.Ethernet, cfg: ProxyConfig, check_sum: bool, guests: Container[object]
) -> bytes | None:
    ip6 = nd.IPv6.decode(eth.payload)
    msg = nd.decode_ndp(ip6, check_sum=check_sum)  # hop limit, code, checksum, options
    if not isinstance(msg, nd.NeighborSolicitation) or not _answered(msg.target, cfg, guests):
        return None
    target = msg.target
    if ip6.dst not in (nd.solicited_node(target), target):
        return None
    want_dst = nd.multicast_mac(ip6.dst) if ip6.dst.is_multicast else cfg.nat_mac
    if eth.dst != want_dst:
        return None
    if ip6.src == nd.UNSPECIFIED6:  # DAD for our address: defend it (module doc)
        defence = nd.NeighborAdvertisement(target, override=True, tllao=cfg.nat_mac)
        return nd.na_frame(cfg.nat_mac, target, nd.ALL_NODES, defence)
    if ip6.src.is_multicast or msg.sllao is None:
        return None
    if not _unicast_mac(msg.sllao) or msg.sllao == cfg.nat_mac:
        return None
    # S=1, O=0 (research check 19): answers a question, does not override caches
    advert = nd.NeighborAdvertisement(target, solicited=True, tllao=cfg.nat_mac)
    return nd.na_frame(cfg.nat_mac, target, ip6.src, advert, dst_mac=msg.sllao)
