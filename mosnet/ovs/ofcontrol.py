"""The OpenFlow controller of br-mosnet (OVS mode): learning, proxy answers, restore.

A state machine with no socket and an injected clock: ``connected()`` gives
the messages to send after the handshake, ``handle(msg)`` those that answer
one message from the switch. ``mosnet.ovs.ofsock`` moves the bytes.

* **Restore on (re)connect:** our base flows are deleted and installed
  again, so a controller restarted after a crash (or after someone flushed
  the table) brings the table back. Learned guest flows stay in the switch
  (``fail_mode=secure`` keeps every flow while no controller is connected).
* **Learning:** a packet-in from a guest port teaches the guest's port and
  MAC (its MAC NAT flows are installed and the packet is re-injected through
  the table) and the addresses it shows (ARP, IP sources, NA targets).
  Address flows idle out after ``ofrules.IDLE_TIMEOUT``; the flow-removed
  message makes us forget the address.
* **Proxy:** ARP requests and NS from the uplink are answered by
  ``proxy.decide`` for the host's and the learned guests' addresses, with
  the NIC MAC, rate-limited like the Linux-bridge proxy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mosnet.base import log
from mosnet.l2 import frames
from mosnet.macnat import guests
from mosnet.ovs import ofrules
from mosnet.ovs import openflow as of
from mosnet.ovs.ofrules import HOST_PORT, NIC_PORT, Flow, Guest
from mosnet.proxy.answers import ProxyConfig, decide
from mosnet.proxy.proxyd import Limits, RateLimiter

_log = log.get("ofcontrol")
OFPT_ECHO_REQUEST = 2
OFPFC_ADD, OFPFC_DELETE = 0, 3
OFPTT_ALL = 0xFF
COOKIE_ALL = (1 << 64) - 1
MAX_GUESTS = 256
MAX_MACS_PER_PORT = 8
OFPRR_DELETE = 2  # flow-removed reason: we deleted it ourselves
DEFAULT_LIMITS = Limits()


@dataclass
class Stats:
    packet_ins: int = 0
    answered: int = 0
    learned_macs: int = 0
    learned_addresses: int = 0
    forgotten: int = 0
    errors: int = 0


class Controller:
    def __init__(
        self,
        proxy: ProxyConfig,
        clock: Callable[[], float],
        *,
        limits: Limits = DEFAULT_LIMITS,
        xids: Iterator[int] | None = None,
    ) -> None:
        self.proxy = proxy
        self.clock = clock
        self.limiter = RateLimiter(limits, clock)
        self.xids = xids if xids is not None else itertools.count(1)
        self.addresses = guests.GuestTable(guests.reserved_for(proxy), clock)
        self.guests: dict[bytes, Guest] = {}  # MAC -> port
        self.stats = Stats()

    # -- messages out ------------------------------------------------------------

    def _xid(self) -> int:
        return next(self.xids) & 0xFFFFFFFF

    def _add(self, flow: Flow) -> bytes:
        return of.flow_mod(
            self._xid(), match=flow.match, actions=flow.actions, priority=flow.priority,
            cookie=flow.cookie, idle_timeout=flow.idle_timeout, flags=flow.flags,
        )  # fmt: skip

    def _delete_cookie(self, cookie: int) -> bytes:
        return of.flow_mod(
            self._xid(), match=of.Match(), command=OFPFC_DELETE, table_id=OFPTT_ALL,
            cookie=cookie, cookie_mask=COOKIE_ALL,
        )  # fmt: skip

    def _guest_ports(self) -> list[int]:
        return sorted({g.port for g in self.guests.values()})

    def base(self) -> list[bytes]:
        """Our base flows, replaced: delete by cookie, then add."""
        flows = ofrules.base_flows(self._guest_ports())
        return [self._delete_cookie(ofrules.cookie(ofrules.KIND_BASE)), *map(self._add, flows)]

    def connected(self) -> list[bytes]:
        """After the hello exchange: full packet-ins, then the table restored."""
        out = [of.set_config(self._xid()), *self.base()]
        out += self._all_guest_flows()
        return [*out, of.barrier_request(self._xid())]

    def _all_guest_flows(self) -> list[bytes]:
        ports = self._guest_ports()
        flows = [
            f
            for g in self.guests.values()
            for f in ofrules.guest_flows(g, self.proxy.nat_mac, ports)
        ]
        return [self._add(f) for f in flows]

    # -- messages in -------------------------------------------------------------

    def handle(self, msg: bytes) -> list[bytes]:
        """The replies to one message; never raises on what the switch sends."""
        try:
            decoded = of.decode(msg)
        except of.OfError as exc:
            self.stats.errors += 1
            _log.warning("undecodable OpenFlow message (%s): %s", exc, msg[:32].hex())
            return []
        if isinstance(decoded, of.PacketIn):
            self.stats.packet_ins += 1
            return self._packet_in(decoded)
        if isinstance(decoded, of.FlowRemoved):
            return self._flow_removed(decoded)
        if isinstance(decoded, of.ErrorMsg):
            self.stats.errors += 1
            _log.error("switch error type %d code %d: %s", decoded.type, decoded.code,
                       decoded.data[:64].hex())  # fmt: skip
            return []
        if isinstance(decoded, of.Header) and decoded.type == OFPT_ECHO_REQUEST:
            return [of.echo_reply(decoded.xid, msg[8:])]
        return []

    def _packet_in(self, pin: of.PacketIn) -> list[bytes]:
        port = pin.match.in_port
        if port == NIC_PORT:
            return self._answer(pin.data)
        if port is None or port == HOST_PORT or not 0 < port < of.OVS_PORTS:
            return []
        out = self._learn_guest(port, pin.data)
        if out and pin.cookie == ofrules.cookie(ofrules.KIND_BASE):
            # it hit the catch-all: send it again, now through its new flows
            out.append(of.packet_out(self._xid(), in_port=port, actions=(of.Output(of.OFPP_TABLE),),
                                     data=pin.data))  # fmt: skip
        return out

    def _answer(self, frame: bytes) -> list[bytes]:
        if self.limiter.exhausted():
            return []
        reply = decide(frame, self.proxy, guests=self.addresses)
        if reply is None or not self.limiter.allow(frame[6:12]):
            return []
        self.stats.answered += 1
        return [of.packet_out(self._xid(), in_port=of.OFPP_CONTROLLER,
                              actions=(of.Output(NIC_PORT),), data=reply)]  # fmt: skip

    def _learn_guest(self, port: int, frame: bytes) -> list[bytes]:
        mac, addresses = guests.frame_addresses(frame)
        if len(mac) != 6 or mac[0] & 1 or mac in (frames.ZERO_MAC, self.proxy.nat_mac):
            return []
        out: list[bytes] = []
        known = self.guests.get(mac)
        if known is None or known.port != port:
            if not self._room_for(port, mac):
                return []
            self.guests[mac] = Guest(port, mac)
            self.stats.learned_macs += 1
            _log.info("guest %s on port %d", frames.mac_str(mac), port)
            # flood lists changed: an add with the same match replaces the actions
            out += [self._add(f) for f in ofrules.base_flows(self._guest_ports())]
            out += self._all_guest_flows()
        for ip in addresses:
            out += self._learn_address(ip, self.guests[mac])
        return out

    def _room_for(self, port: int, mac: bytes) -> bool:
        on_port = sum(1 for g in self.guests.values() if g.port == port and g.mac != mac)
        if on_port >= MAX_MACS_PER_PORT or len(self.guests) >= MAX_GUESTS:
            _log.warning("guest %s on port %d not learned: too many guests",
                         frames.mac_str(mac), port)  # fmt: skip
            return False
        return True

    def _learn_address(self, ip: guests.IpAddress, guest: Guest) -> list[bytes]:
        learned = self.addresses.learn(ip, guest.mac, guest.port)
        if learned is None:
            return []
        binding, changed = learned
        if changed:
            self.stats.learned_addresses += 1
            _log.info("guest address %s at %s port %d", ip, frames.mac_str(guest.mac), guest.port)
        # re-adding an identical flow restarts its idle timer: the guest is alive
        return [self._add(f) for f in ofrules.address_flows(ip, guest, binding.index)]

    def _flow_removed(self, fr: of.FlowRemoved) -> list[bytes]:
        if ofrules.cookie_kind(fr.cookie) != ofrules.KIND_ADDR or fr.reason == OFPRR_DELETE:
            return []
        ip = self.addresses.by_index(fr.cookie & 0xFFFFFF)
        # A flow left by an earlier controller may carry the same index.
        if ip is None or ip not in (fr.match.ipv4_dst, fr.match.ipv6_dst):
            return []
        self.addresses.forget(ip)
        self.stats.forgotten += 1
        _log.info("guest address %s expired", ip)
        return [self._delete_cookie(fr.cookie)]  # the ARP companion flow too


def restore_messages(guest_ports: tuple[int, ...] = ()) -> list[bytes]:
    """The base flows alone (PID 1 installs them before any controller runs)."""
    xids = itertools.count(0xB000)
    flows = ofrules.base_flows(guest_ports)
    base = ofrules.cookie(ofrules.KIND_BASE)
    delete = of.flow_mod(next(xids), match=of.Match(), command=OFPFC_DELETE, table_id=OFPTT_ALL,
                         cookie=base, cookie_mask=COOKIE_ALL)  # fmt: skip
    adds = [
        of.flow_mod(
            next(xids),
            match=f.match,
            actions=f.actions,
            priority=f.priority,
            cookie=f.cookie,
            idle_timeout=f.idle_timeout,
            flags=f.flags,
        )  # fmt: skip
        for f in flows
    ]
    return [delete, *adds]
