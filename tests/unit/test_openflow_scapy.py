"""mosnet.ovs.openflow against scapy's openflow3, messages built by another implementation.

scapy is only a test oracle here; mosnet itself never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from mosnet.ovs import openflow as of
from tests.unit.helpers.of_openflow import MAC, MCAST, arp_frame

# --- scapy: messages built by another implementation -------------------------------


@pytest.fixture
def ofp3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """scapy.contrib.openflow3 with its prerequisite auto-completion off: it builds
    exactly the fields it is given (on, it adds eth_type even when present)."""
    from scapy.config import conf
    from scapy.contrib import openflow3

    monkeypatch.setitem(conf.contribs["OPENFLOW"], "prereq_autocomplete", False)
    yield openflow3


def test_decode_scapy_packet_in(ofp3: Any) -> None:
    fields = [ofp3.OFBInPort(in_port=3), ofp3.OFBMetadata(metadata=7),
              ofp3.OFBTunnelID(tunnel_id=9), ofp3.OFBEthType(eth_type=0x0806),
              ofp3.OFBIPv6FLabel(ipv6_flabel=1), ofp3.OFBARPTPA(arp_tpa=0x0A000005)]  # fmt: skip
    msg = bytes(ofp3.OFPTPacketIn(xid=9, buffer_id=0xFFFFFFFF, total_len=60, reason=1,
                                  table_id=2, cookie=0x1234, match=ofp3.OFPMatch(oxm_fields=fields),
                                  data=arp_frame()))  # fmt: skip
    got = of.decode(msg)
    want_match = of.Match(in_port=3, eth_type=0x0806, arp_tpa=IPv4Address("10.0.0.5"))
    assert got == of.PacketIn(of.OFP_NO_BUFFER, 60, of.OFPR_ACTION, 2, 0x1234, want_match,
                              arp_frame())  # fmt: skip
    assert of.parse_header(msg) == of.Header(4, of.OFPT_PACKET_IN, len(msg), 9)


def test_decode_scapy_packet_in_ipv6(ofp3: Any) -> None:
    src, dst = IPv6Address("fe80::1"), IPv6Address("ff02::1:ff00:5")
    fields = [ofp3.OFBInPort(in_port=1), ofp3.OFBEthDstHM(eth_dst="33:33:00:00:00:00",
              eth_dst_mask=0xFFFF00000000), ofp3.OFBEthType(eth_type=0x86DD),
              ofp3.OFBIPv6Src(ipv6_src=int(src)), ofp3.OFBIPv6Dst(ipv6_dst=int(dst)),
              ofp3.OFBIPProto(ip_proto=58), ofp3.OFBICMPv6Type(icmpv6_type=135),
              ofp3.OFBICMPv6Code(icmpv6_code=0),
              ofp3.OFBIPv6NDTarget(ipv6_nd_target=int(IPv6Address("fe80::5")))]  # fmt: skip
    msg = bytes(ofp3.OFPTPacketIn(match=ofp3.OFPMatch(oxm_fields=fields), data=b"xyz"))
    got = of.decode(msg)
    assert isinstance(got, of.PacketIn) and got.data == b"xyz"
    assert got.match == of.Match(
        in_port=1, eth_dst=b"33" + bytes(4), eth_dst_mask=b"\xff\xff" + bytes(4),
        eth_type=0x86DD, ip_proto=58, ipv6_src=src, ipv6_dst=dst, icmpv6_type=135,
        icmpv6_code=0, nd_target=IPv6Address("fe80::5"),
    )  # fmt: skip


def test_decode_scapy_flow_removed(ofp3: Any) -> None:
    fields = [ofp3.OFBInPort(in_port=1), ofp3.OFBEthType(eth_type=0x0800),
              ofp3.OFBIPv4Dst(ipv4_dst="10.0.0.9")]  # fmt: skip
    msg = bytes(ofp3.OFPTFlowRemoved(xid=3, cookie=5, priority=200, reason=0, table_id=1,
                                     duration_sec=301, idle_timeout=300, hard_timeout=0,
                                     packet_count=4, byte_count=400,
                                     match=ofp3.OFPMatch(oxm_fields=fields)))  # fmt: skip
    match = of.Match(in_port=1, eth_type=0x0800, ipv4_dst=IPv4Address("10.0.0.9"))
    assert of.decode(msg) == of.FlowRemoved(5, 200, of.OFPRR_IDLE_TIMEOUT, 1, 300, 0, match)


def test_decode_scapy_error_and_hello(ofp3: Any) -> None:
    request = of.barrier_request(5)
    error = bytes(ofp3.OFPETBadMatch(xid=5, errcode=9, data=request))  # OFPBMC_BAD_PREREQ
    assert of.decode(error) == of.ErrorMsg(of.OFPET_BAD_MATCH, 9, request)
    hello = bytes(ofp3.OFPTHello(elements=[ofp3.OFPHETVersionBitmap(bitmap=0x52)]))
    assert of.decode(hello) == of.HelloMsg(4, frozenset({1, 4, 6}))
    assert bytes(ofp3.OFPTHello(xid=1, elements=[ofp3.OFPHETVersionBitmap(bitmap=0x10)])) == (
        of.hello(1))  # fmt: skip
    assert bytes(ofp3.OFPTSetConfig(xid=2, flags=0, miss_send_len=0xFFFF)) == of.set_config(2)
    assert bytes(ofp3.OFPTEchoRequest(xid=3) / b"hi") == of.echo_request(3, b"hi")


def test_flow_mod_bytes_match_scapy(ofp3: Any) -> None:
    mine = of.flow_mod(
        7, match=of.Match(in_port=1, eth_type=0x0806, arp_tpa=IPv4Address("10.0.0.5")),
        actions=[of.SetField("arp_tha", MAC), of.Output(3)], priority=200, cookie=5,
        idle_timeout=300, flags=of.OFPFF_SEND_FLOW_REM,
    )  # fmt: skip
    theirs = ofp3.OFPTFlowMod(
        xid=7, cookie=5, idle_timeout=300, priority=200, flags=1,
        match=ofp3.OFPMatch(oxm_fields=[ofp3.OFBInPort(in_port=1),
                                        ofp3.OFBEthType(eth_type=0x0806),
                                        ofp3.OFBARPTPA(arp_tpa=0x0A000005)]),
        instructions=[ofp3.OFPITApplyActions(actions=[
            ofp3.OFPATSetField(field=[ofp3.OFBARPTHA(arp_tha=int.from_bytes(MAC))]),
            ofp3.OFPATOutput(port=3)])],
    )  # fmt: skip
    assert mine == bytes(theirs)


def test_scapy_parses_flow_mod_and_packet_out(ofp3: Any) -> None:
    # scapy 2.8.0 does not skip a set-field's padding when parsing: outputs only here
    outputs = [of.Output(2), of.Output(of.OFPP_CONTROLLER)]
    msg = of.flow_mod(8, match=of.Match(eth_dst=MCAST, eth_dst_mask=MCAST), priority=9,
                      command=of.OFPFC_MODIFY, actions=outputs)  # fmt: skip
    fm = ofp3.OpenFlow3(msg)
    assert (fm.xid, fm.cmd, fm.priority, fm.buffer_id) == (8, 1, 9, of.OFP_NO_BUFFER)
    assert fm.len == len(msg)
    (oxm,) = fm.match.oxm_fields
    assert (oxm.field, oxm.hasmask, oxm.eth_dst_mask) == (3, 1, 1 << 40)
    assert oxm.eth_dst == "01:00:00:00:00:00"
    (apply,) = fm.instructions
    assert [(a.port, a.max_len) for a in apply.actions] == [(2, 0xFFFF), (0xFFFFFFFD, 0xFFFF)]
    po = ofp3.OpenFlow3(of.packet_out(9, in_port=2, actions=[of.Output(1)], data=arp_frame()))
    assert (po.in_port, po.actions_len, po.actions[0].port) == (2, 16, 1)
    assert bytes(po.data) == arp_frame()[:42]  # scapy drops the Ethernet padding
    assert ofp3.OpenFlow3(of.flow_mod(1, match=of.Match())).instructions == []
