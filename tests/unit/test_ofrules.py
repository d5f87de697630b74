"""br-mosnet's OpenFlow table in OVS mode (mosnet.ovs.ofrules): the flows as data.

The flows (priorities, cookies, timeouts) and the MAC NAT safety property per
action list. Every flow is encoded with ``openflow.flow_mod``; when ovs-ofctl
is installed, OVS's own decoder reads each one back.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from mosnet.l2 import frames
from mosnet.ovs import ofrules
from mosnet.ovs import openflow as of
from mosnet.ovs.ofrules import (
    HOST_PORT,
    KIND_ADDR,
    KIND_BASE,
    KIND_GUEST,
    NIC_PORT,
    Flow,
    Guest,
    address_flows,
    base_flows,
    cookie,
    cookie_kind,
    guest_flows,
    render,
)
from mosnet.ovs.openflow import OFPP_CONTROLLER, Match, Output, SetField
from tests.unit.helpers.of_rules import (
    A4,
    A6,
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    GUEST_PORTS,
    MAC_A,
    MAC_B,
    NAT,
    A,
    B,
    full_table,
)

OVS_OFCTL = shutil.which("ovs-ofctl") or shutil.which("ovs-ofctl", path="/usr/bin")


def every_flow() -> Iterator[Flow]:
    """All flows of a few layouts, edge ports included."""
    yield from full_table()
    yield from base_flows([])
    yield from base_flows(list(range(3, 64)))
    edge = Guest(0xFEFF, MAC_B)
    yield from guest_flows(edge, NAT, [3, 0xFEFF])
    yield from address_flows(IPv4Address("192.0.2.1"), edge, 0xFFFFFF)
    yield from address_flows(IPv6Address("2001:db8::1"), edge, 0xFFFFFF)


def encode(flow: Flow, xid: int = 1) -> bytes:
    return of.flow_mod(
        xid, match=flow.match, actions=flow.actions, priority=flow.priority,
        cookie=flow.cookie, idle_timeout=flow.idle_timeout, flags=flow.flags,
    )  # fmt: skip


def outputs(flow: Flow) -> list[int]:
    return [a.port for a in flow.actions if isinstance(a, Output)]


def find(flows: list[Flow], match: Match) -> Flow:
    (hit,) = [f for f in flows if f.match == match]
    return hit


# --- base flows -------------------------------------------------------------------


def test_base_flows_are_seven_with_the_base_cookie() -> None:
    flows = base_flows(GUEST_PORTS)
    assert len(flows) == 7
    assert {f.cookie for f in flows} == {cookie(KIND_BASE)}
    assert all(cookie_kind(f.cookie) == KIND_BASE for f in flows)
    assert all(f.idle_timeout == 0 and f.flags == 0 for f in flows)
    assert len({(f.priority, f.match) for f in flows}) == 7


def test_arp_requests_and_ns_from_the_uplink_go_to_the_controller_and_the_host() -> None:
    flows = base_flows(GUEST_PORTS)
    arp = find(flows, Match(in_port=NIC_PORT, eth_type=ETH_ARP, arp_op=1))
    ns = find(flows, Match(in_port=NIC_PORT, eth_type=ETH_IPV6, ip_proto=58, icmpv6_type=135))
    for flow in (arp, ns):
        assert flow.actions == (Output(OFPP_CONTROLLER, of.OFPCML_NO_BUFFER), Output(HOST_PORT))
        assert flow.priority > max(f.priority for f in flows if f not in (arp, ns))


def test_broadcast_from_the_uplink_reaches_the_host_and_the_guests() -> None:
    flows = base_flows([3, 7, 9])
    mcast = find(flows, Match(in_port=NIC_PORT, eth_dst=ofrules.MULTICAST,
                              eth_dst_mask=ofrules.MULTICAST))  # fmt: skip
    assert outputs(mcast) == [HOST_PORT, 3, 7, 9]
    rest = find(flows, Match(in_port=NIC_PORT))
    assert outputs(rest) == [HOST_PORT] and rest.priority < mcast.priority


def test_host_frames_go_out_the_uplink_and_broadcasts_to_the_guests() -> None:
    flows = base_flows([3, 7])
    mcast = find(flows, Match(in_port=HOST_PORT, eth_dst=ofrules.MULTICAST,
                              eth_dst_mask=ofrules.MULTICAST))  # fmt: skip
    assert outputs(mcast) == [NIC_PORT, 3, 7]
    assert outputs(find(flows, Match(in_port=HOST_PORT))) == [NIC_PORT]


def test_no_guests_no_guest_outputs() -> None:
    for flow in base_flows([]):
        assert set(outputs(flow)) <= {NIC_PORT, HOST_PORT, OFPP_CONTROLLER}


def test_the_catch_all_sends_unknown_guests_to_the_controller() -> None:
    flows = base_flows(GUEST_PORTS)
    catch_all = find(flows, Match())
    assert catch_all.priority == 1
    assert catch_all.actions == (Output(OFPP_CONTROLLER, of.OFPCML_NO_BUFFER),)
    assert min(f.priority for f in flows) == 1


# --- guest flows ------------------------------------------------------------------


def _is_kind(m: Match, eth_type: int, icmp: int | None = None) -> bool:
    return m.eth_type == eth_type and (icmp is None or m.icmpv6_type == icmp)


@pytest.mark.parametrize("guest", [A, B, Guest(0xFEFF, MAC_B)])
def test_every_uplink_output_from_a_guest_is_rewritten_first(guest: Guest) -> None:
    """The key safety property: the provider only ever sees the NAT MAC."""
    flows = guest_flows(guest, NAT, [3, 4, guest.port])
    checked = 0
    for flow in flows:
        acts = list(flow.actions)
        if Output(NIC_PORT) not in acts:
            continue
        checked += 1
        first_out = acts.index(Output(NIC_PORT))
        before = acts[:first_out]
        assert SetField("eth_src", NAT) in before, render(flow)
        m = flow.match
        assert m.in_port == guest.port and m.eth_src == guest.mac, render(flow)
        if _is_kind(m, ETH_ARP):
            assert SetField("arp_sha", NAT) in before, render(flow)
        if _is_kind(m, ETH_IPV6, 135):
            assert SetField("nd_sll", NAT) in before, render(flow)
        if _is_kind(m, ETH_IPV6, 136):
            assert SetField("nd_tll", NAT) in before, render(flow)
        # nothing after the rewrite undoes it
        assert all(not isinstance(a, SetField) or a.value == NAT for a in acts), render(flow)
    assert checked == 5  # ARP, NS, NA, multicast, unicast


def test_guest_ndp_and_arp_also_reach_the_controller() -> None:
    flows = guest_flows(A, NAT, GUEST_PORTS)
    for flow in flows:
        m = flow.match
        if _is_kind(m, ETH_ARP) or m.icmpv6_type in (135, 136):
            assert flow.actions[0] == Output(OFPP_CONTROLLER, of.OFPCML_NO_BUFFER)
            assert outputs(flow)[1:3] == [HOST_PORT, B.port]


@pytest.mark.parametrize("icmp", [133, 134, 137])
def test_router_solicitations_adverts_and_redirects_are_dropped(icmp: int) -> None:
    flows = guest_flows(A, NAT, GUEST_PORTS)
    want = Match(in_port=A.port, eth_src=MAC_A, eth_type=ETH_IPV6, ip_proto=58, icmpv6_type=icmp)
    drop = find(flows, want)
    assert drop.actions == ()
    others = [f for f in flows if f.match.in_port == A.port and f.match.icmpv6_type is None]
    mcast = find(others, Match(in_port=A.port, eth_src=MAC_A, eth_dst=ofrules.MULTICAST,
                               eth_dst_mask=ofrules.MULTICAST))  # fmt: skip
    assert drop.priority > mcast.priority


def test_frames_to_the_guest_mac_go_to_its_port_above_everything_else() -> None:
    flows = guest_flows(A, NAT, GUEST_PORTS)
    to_guest = find(flows, Match(eth_dst=MAC_A))
    assert to_guest.actions == (Output(A.port),)
    assert to_guest.priority > max(f.priority for f in flows if f is not to_guest)
    for other in (*guest_flows(B, NAT, GUEST_PORTS), *address_flows(A4, A, 1)):
        if other.match.in_port is not None:  # B's own to-MAC flow is disjoint
            assert to_guest.priority > other.priority, render(other)
    # only the uplink's ARP requests and NS (the proxy's) rank higher
    above = [f for f in base_flows(GUEST_PORTS) if f.priority >= to_guest.priority]
    assert all(f.match.in_port == NIC_PORT and f.match.eth_type for f in above)


def test_guest_frames_to_the_nat_mac_go_to_the_host_only() -> None:
    flows = guest_flows(A, NAT, GUEST_PORTS)
    to_host = find(flows, Match(in_port=A.port, eth_src=MAC_A, eth_dst=NAT))
    assert to_host.actions == (Output(HOST_PORT),)


def test_a_guest_never_floods_back_to_its_own_port() -> None:
    for flow in guest_flows(A, NAT, [3, 4, 5]):
        if flow.match.in_port == A.port:
            assert A.port not in outputs(flow)
            assert outputs(flow).count(5) <= 1


def test_guest_flows_carry_the_guest_cookie_and_no_timeout() -> None:
    flows = guest_flows(A, NAT, GUEST_PORTS)
    assert {f.cookie for f in flows} == {cookie(KIND_GUEST)}
    assert all(f.idle_timeout == 0 and f.flags == 0 for f in flows)


# --- address flows ----------------------------------------------------------------


def test_ipv4_address_flows() -> None:
    ip_flow, arp_flow = address_flows(A4, A, 42)
    assert {ip_flow.cookie, arp_flow.cookie} == {cookie(KIND_ADDR, 42)}
    assert ip_flow.match == Match(in_port=NIC_PORT, eth_type=ETH_IP, ipv4_dst=A4)
    assert ip_flow.actions == (SetField("eth_dst", MAC_A), Output(A.port))
    assert arp_flow.match == Match(in_port=NIC_PORT, eth_type=ETH_ARP, arp_tpa=A4)
    assert arp_flow.actions == (SetField("arp_tha", MAC_A), SetField("eth_dst", MAC_A),
                                Output(A.port))  # fmt: skip
    assert ip_flow.idle_timeout == arp_flow.idle_timeout == ofrules.IDLE_TIMEOUT
    assert ip_flow.flags == ofrules.OFPFF_SEND_FLOW_REM and arp_flow.flags == 0


def test_ipv6_address_flow() -> None:
    (flow,) = address_flows(A6, A, 7)
    assert flow.cookie == cookie(KIND_ADDR, 7)
    assert flow.match == Match(in_port=NIC_PORT, eth_type=ETH_IPV6, ipv6_dst=A6)
    assert flow.actions == (SetField("eth_dst", MAC_A), Output(A.port))
    assert flow.idle_timeout == ofrules.IDLE_TIMEOUT
    assert flow.flags == ofrules.OFPFF_SEND_FLOW_REM


def test_address_flows_lose_to_uplink_arp_requests_and_ns() -> None:
    """Requests for a guest address are the proxy's: they must not go to the guest."""
    base = max(f.priority for f in base_flows([]) if f.match.in_port == NIC_PORT)
    assert all(f.priority < base for f in [*address_flows(A4, A, 1), *address_flows(A6, A, 2)])


# --- cookies ----------------------------------------------------------------------


def test_cookies() -> None:
    assert cookie(KIND_BASE) == 0x6D6F736E_01000000
    assert cookie(KIND_ADDR, 5) == 0x6D6F736E_03000005
    assert cookie(KIND_ADDR, 0x1000005) == cookie(KIND_ADDR, 5)  # 24-bit index
    assert [cookie_kind(cookie(k, 9)) for k in (KIND_BASE, KIND_GUEST, KIND_ADDR)] == [1, 2, 3]
    assert cookie(KIND_ADDR, 0xFFFFFF) & 0xFFFFFF == 0xFFFFFF


@pytest.mark.parametrize("foreign", [0, 1, 0x12345678_03000001, (1 << 64) - 1, 0x6D6F736F << 32])
def test_foreign_cookies_have_no_kind(foreign: int) -> None:
    assert cookie_kind(foreign) is None


# --- render -----------------------------------------------------------------------


def test_render() -> None:
    base = base_flows([3])
    arp = "priority=300,in_port=1,eth_type=2054,arp_op=1 actions=CONTROLLER,output:2"
    assert render(base[0]) == arp
    assert render(find(base, Match())) == "priority=1 actions=CONTROLLER"
    mcast = "eth_dst=01:00:00:00:00:00/01:00:00:00:00:00"
    assert render(base[2]) == f"priority=100,in_port=1,{mcast} actions=output:2,output:3"
    drop = [f for f in guest_flows(A, NAT, GUEST_PORTS) if not f.actions]
    assert render(drop[0]).endswith(",icmpv6_type=133 actions=drop")
    ip_flow, arp_flow = address_flows(A4, A, 1)
    assert render(ip_flow) == (
        "priority=200,in_port=1,eth_type=2048,ipv4_dst=10.70.0.50,idle_timeout=300 "
        "actions=set_field:02:cc:00:00:00:03->eth_dst,output:3"
    )
    assert "set_field:02:cc:00:00:00:03->arp_tha," in render(arp_flow)
    unicast = find(guest_flows(A, NAT, GUEST_PORTS), Match(in_port=3, eth_src=MAC_A))
    assert render(unicast) == (
        "priority=200,in_port=3,eth_src=02:cc:00:00:00:03 "
        "actions=set_field:02:aa:00:00:00:01->eth_src,output:1"
    )


# --- encoding ---------------------------------------------------------------------


def test_every_flow_passes_the_prerequisite_checks_and_encodes() -> None:
    count = 0
    for flow in every_flow():
        flow.match.check()
        msg = encode(flow)
        header = of.parse_header(msg)
        assert (header.version, header.type, header.length) == (4, of.OFPT_FLOW_MOD, len(msg))
        match, _ = Match.decode(msg, 8 + 40)
        assert match == flow.match
        count += 1
    assert count > 50


@pytest.mark.skipif(OVS_OFCTL is None, reason="ovs-ofctl is not installed")
def test_ovs_ofctl_decodes_every_flow() -> None:
    assert OVS_OFCTL is not None
    for flow in every_flow():
        msg = encode(flow, 0x77)
        res = subprocess.run([OVS_OFCTL, "ofp-print", msg.hex()], capture_output=True,
                             text=True, timeout=10)  # fmt: skip
        text = res.stdout + res.stderr
        assert res.returncode == 0, text
        for word in ("error", "bad", "truncated", "warn", "lacks"):
            assert word not in text.lower(), (render(flow), text)
        assert res.stdout.startswith("OFPT_FLOW_MOD (OF1.3) (xid=0x77): ADD"), text
        assert f"priority={flow.priority}" in text and f"cookie:{flow.cookie:#x}" in text, text
        if flow.idle_timeout:
            assert f"idle:{flow.idle_timeout}" in text, text
        assert ("send_flow_rem" in text) == bool(flow.flags & ofrules.OFPFF_SEND_FLOW_REM), text
        if Output(NIC_PORT) in flow.actions and flow.match.in_port not in (NIC_PORT, HOST_PORT):
            assert f"set_field:{frames.mac_str(NAT)}->eth_src,output:1" in text, text
        if not flow.actions:
            assert "actions=drop" in text, text
