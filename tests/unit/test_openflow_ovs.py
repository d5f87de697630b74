"""mosnet.ovs.openflow against Open vSwitch's own decoder (ovs-ofctl).

``ovs-ofctl ofp-print``/``ofp-parse`` run OVS 3.1's message decoder, the very
code ovs-vswitchd runs on a flow-mod, prerequisite and port checks included:
what they refuse, the bridge would answer with an OpenFlow error at run time.
"""

from __future__ import annotations

import dataclasses
import random
import re
import shutil
import struct
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from mosnet.ovs import openflow as of
from tests.unit.helpers.of_openflow import MAC, MCAST, NAT, arp_frame

OFCTL = shutil.which("ovs-ofctl")
needs_ofctl = pytest.mark.skipif(
    OFCTL is None, reason="ovs-ofctl missing: apt-get install openvswitch-common"
)


def ofp_print(msg: bytes) -> str:
    """OVS's text for one message; fails the test on a decode error."""
    assert OFCTL is not None
    run = subprocess.run([OFCTL, "ofp-print", msg.hex()], capture_output=True, text=True,
                         check=True, timeout=10)  # fmt: skip
    assert "decode error" not in run.stdout, run.stdout + run.stderr
    return run.stdout


def ofp_parse(messages: list[bytes], tmp_path: Path) -> dict[int, str]:
    """OVS's first line for each message of a stream, by xid (one ovs-ofctl run)."""
    assert OFCTL is not None
    stream = tmp_path / "stream.of"
    stream.write_bytes(b"".join(messages))
    run = subprocess.run([OFCTL, "ofp-parse", str(stream)], capture_output=True, text=True,
                         check=True, timeout=20)  # fmt: skip
    lines = re.findall(r"^OFPT_\w+ \(OF1\.3\) \(xid=(0x[0-9a-f]+)\):(.*)$", run.stdout, re.M)
    return {int(xid, 16): text for xid, text in lines}


# --- ovs-ofctl: every encoder, as OVS reads it ----------------------------------

SIMPLE = [
    (of.hello(1), "OFPT_HELLO (OF1.3) (xid=0x1):\n version bitmap: 0x04\n"),
    (of.echo_request(2, b"ab"), "OFPT_ECHO_REQUEST (OF1.3) (xid=0x2): 2 bytes of payload"),
    (of.echo_reply(0xFFFFFFFF), "OFPT_ECHO_REPLY (OF1.3) (xid=0xffffffff): 0 bytes of payload"),
    (of.features_request(4), "OFPT_FEATURES_REQUEST (OF1.3) (xid=0x4):"),
    (of.set_config(5), "OFPT_SET_CONFIG (OF1.3) (xid=0x5): frags=normal miss_send_len=65535"),
    (of.set_config(6, 128), "OFPT_SET_CONFIG (OF1.3) (xid=0x6): frags=normal miss_send_len=128"),
    (of.barrier_request(7), "OFPT_BARRIER_REQUEST (OF1.3) (xid=0x7):"),
]


@needs_ofctl
@pytest.mark.parametrize(("msg", "want"), SIMPLE)
def test_ofp_print_simple(msg: bytes, want: str) -> None:
    assert ofp_print(msg).startswith(want)


@needs_ofctl
def test_ofp_print_arp_address_flow() -> None:
    msg = of.flow_mod(
        9, match=of.Match(in_port=1, eth_type=0x0806, arp_tpa=IPv4Address("10.0.0.5")),
        actions=[of.SetField("eth_dst", MAC), of.SetField("arp_tha", MAC), of.Output(3)],
        priority=200, cookie=0x6D6F736E03000005, idle_timeout=300, flags=of.OFPFF_SEND_FLOW_REM,
    )  # fmt: skip
    assert ofp_print(msg).splitlines()[0] == (
        "OFPT_FLOW_MOD (OF1.3) (xid=0x9): ADD priority=200,arp,in_port=1,arp_tpa=10.0.0.5"
        " cookie:0x6d6f736e03000005 idle:300 send_flow_rem"
        " actions=set_field:52:54:00:12:34:56->eth_dst,set_field:52:54:00:12:34:56->arp_tha,"
        "output:3"
    )


ND = of.Match(in_port=4, eth_src=MAC, eth_type=0x86DD, ip_proto=58, icmpv6_type=135)
FLOWS: list[tuple[dict[str, Any], str]] = [
    ({"match": of.Match(in_port=1, eth_dst=MCAST, eth_dst_mask=MCAST),
      "actions": [of.Output(2), of.Output(of.OFPP_CONTROLLER)], "priority": 100},
     "ADD priority=100,in_port=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"
     " actions=output:2,CONTROLLER:65535"),
    ({"match": ND, "actions": [of.Output(of.OFPP_CONTROLLER, 128), of.SetField("nd_sll", NAT),
                               of.SetField("eth_src", NAT), of.Output(1)]},
     "ADD priority=0,icmp6,in_port=4,dl_src=52:54:00:12:34:56,icmp_type=135 actions="
     "CONTROLLER:128,set_field:02:aa:bb:cc:dd:ee->nd_sll,set_field:02:aa:bb:cc:dd:ee->eth_src,"
     "output:1"),
    ({"match": dataclasses.replace(ND, icmpv6_type=136, icmpv6_code=0,
                                   nd_target=IPv6Address("2a01:4f8::5")),
      "actions": [of.SetField("nd_tll", NAT), of.Output(of.OFPP_IN_PORT)]},
     "ADD priority=0,icmp6,in_port=4,dl_src=52:54:00:12:34:56,icmp_type=136,icmp_code=0,"
     "nd_target=2a01:4f8::5 actions=set_field:02:aa:bb:cc:dd:ee->nd_tll,IN_PORT"),
    ({"match": of.Match(eth_type=0x86DD, ipv6_src=IPv6Address("fe80::1"),
                        ipv6_dst=IPv6Address("2a01:4f8::5")),
      "actions": [of.Output(of.OFPP_LOCAL), of.Output(of.OFPP_NORMAL), of.Output(of.OFPP_FLOOD),
                  of.Output(of.OFPP_ALL)], "hard_timeout": 60,
      "flags": of.OFPFF_CHECK_OVERLAP | of.OFPFF_RESET_COUNTS},
     "ADD priority=0,ipv6,ipv6_src=fe80::1,ipv6_dst=2a01:4f8::5 hard:60 check_overlap"
     " reset_counts actions=LOCAL,NORMAL,FLOOD,ALL"),
    ({"match": of.Match(eth_type=0x0800, ip_proto=17, ipv4_dst=IPv4Address("192.0.2.1")),
      "command": of.OFPFC_MODIFY_STRICT, "priority": 7, "table_id": 3},
     "MOD_STRICT table:3 priority=7,udp,nw_dst=192.0.2.1 actions=drop"),
    ({"match": of.Match(eth_type=0x0806, arp_op=2, arp_spa=IPv4Address("10.0.0.1"),
                        arp_tpa=IPv4Address("10.0.0.2"))},
     "ADD priority=0,arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_op=2 actions=drop"),
    ({"match": of.Match(), "command": of.OFPFC_DELETE, "table_id": of.OFPTT_ALL,
      "cookie": 0x6D6F736E00000000, "cookie_mask": 0xFFFFFFFF00000000, "out_port": 2},
     "DEL table:255 priority=0 cookie:0x6d6f736e00000000/0xffffffff00000000 out_port:2"
     " actions=drop"),
    ({"match": of.Match(in_port=of.OFPP_LOCAL), "command": of.OFPFC_DELETE_STRICT,
      "priority": 5}, "DEL_STRICT priority=5,in_port=LOCAL actions=drop"),
]  # fmt: skip


@needs_ofctl
@pytest.mark.parametrize(("kwargs", "want"), FLOWS)
def test_ofp_print_flow_mods(kwargs: dict[str, Any], want: str) -> None:
    text = ofp_print(of.flow_mod(0x42, **kwargs)).splitlines()[0]
    assert text == f"OFPT_FLOW_MOD (OF1.3) (xid=0x42): {want}"


@needs_ofctl
def test_ofp_print_packet_out() -> None:
    frame = arp_frame()
    msg = of.packet_out(3, in_port=of.OFPP_CONTROLLER, data=frame,
                        actions=[of.SetField("arp_tha", MAC), of.Output(1)])  # fmt: skip
    first, packet = ofp_print(msg).splitlines()[:2]
    assert first == (
        "OFPT_PACKET_OUT (OF1.3) (xid=0x3): in_port=CONTROLLER"
        " actions=set_field:52:54:00:12:34:56->arp_tha,output:1 data_len=60"
    )
    assert packet.startswith("arp,vlan_tci=0x0000,dl_src=52:54:00:12:34:56,dl_dst=ff:ff:ff:ff:ff")
    assert "arp_spa=10.0.0.2,arp_tpa=10.0.0.5,arp_op=1" in packet
    local = ofp_print(of.packet_out(4, in_port=2, actions=[], data=frame)).splitlines()[0]
    assert local == "OFPT_PACKET_OUT (OF1.3) (xid=0x4): in_port=2 actions=drop data_len=60"
    table = of.packet_out(5, in_port=of.OFPP_LOCAL, actions=[of.Output(of.OFPP_TABLE)], data=frame)
    assert "in_port=LOCAL actions=TABLE data_len=60" in ofp_print(table)


# --- ovs-ofctl: Match.check and the set-field checks agree with OVS --------------

# by eth_type: the fields that make sense with it (each drawn often), and values
# OVS may refuse beyond prerequisites: ports over 16 bits, arp_op over 8 bits
FAMILY_POOLS: dict[int, dict[str, list[Any]]] = {
    0x0800: {"ip_proto": [1, 6, 58], "ipv4_dst": [IPv4Address("10.0.0.5")]},
    0x0806: {"arp_op": [1, 2, 255, 256], "arp_spa": [IPv4Address("10.0.0.1")],
             "arp_tpa": [IPv4Address("10.0.0.2")]},
    0x86DD: {"ip_proto": [6, 58, 58, 58], "ipv6_src": [IPv6Address("fe80::1")],
             "ipv6_dst": [IPv6Address("2a01:4f8::5")], "icmpv6_type": [128, 135, 136, 136],
             "icmpv6_code": [0, 0, 1], "nd_target": [IPv6Address("fe80::2")]},
    0x88CC: {},
}  # fmt: skip
ANY_POOLS: dict[str, list[Any]] = {
    "in_port": [0, 1, 0xFEFF, 0xFF00, 0x10000, of.OFPP_LOCAL, of.OFPP_CONTROLLER],
    "eth_dst": [MAC, MCAST],
    "eth_src": [MAC],
}
FOREIGN = {name: pool for pools in FAMILY_POOLS.values() for name, pool in pools.items()}
OXM_FORMATS = {"in_port": "I", "eth_type": "H", "ip_proto": "B", "arp_op": "H",
               "icmpv6_type": "B", "icmpv6_code": "B"}  # fmt: skip
OXM_NUMBERS = {"in_port": 0, "eth_dst": 3, "eth_src": 4, "eth_type": 5, "ip_proto": 10,
               "ipv4_dst": 12, "arp_op": 21, "arp_spa": 22, "arp_tpa": 23, "ipv6_src": 26,
               "ipv6_dst": 27, "icmpv6_type": 29, "icmpv6_code": 30, "nd_target": 31}  # fmt: skip


def random_match(rng: random.Random) -> of.Match:
    eth_type = rng.choice([None, *FAMILY_POOLS])
    values = {n: rng.choice(pool) for n, pool in FOREIGN.items() if rng.random() < 0.04}
    family = FAMILY_POOLS.get(eth_type, {}) if eth_type else {}
    values |= {n: rng.choice(pool) for n, pool in family.items() if rng.random() < 0.5}
    values |= {n: rng.choice(pool) for n, pool in ANY_POOLS.items() if rng.random() < 0.3}
    values["eth_type"] = eth_type
    if "eth_dst" in values and rng.random() < 0.5:
        values["eth_dst_mask"] = rng.choice([MCAST, b"\xff" * 6, b"\0" * 6])
    return of.Match(**values)


def raw_match(m: of.Match) -> bytes:
    """An independent OXM encoder, without any check: what OVS gets to judge."""
    body = b""
    for name, number in OXM_NUMBERS.items():
        value = getattr(m, name)
        if value is None:
            continue
        raw = struct.pack("!" + OXM_FORMATS[name], value) if name in OXM_FORMATS else value
        raw = raw.packed if isinstance(raw, IPv4Address | IPv6Address) else raw
        mask = m.eth_dst_mask if name == "eth_dst" and m.eth_dst_mask else b""
        body += struct.pack("!HBB", 0x8000, number << 1 | bool(mask), len(raw + mask)) + raw + mask
    head = struct.pack("!HH", 1, 4 + len(body))
    return (head + body).ljust(-(-(4 + len(body)) // 8) * 8, b"\0")


def random_actions(rng: random.Random) -> list[of.Action]:
    fields = ["eth_dst", "eth_src", "arp_sha", "arp_tha", "nd_sll", "nd_tll"]
    sets = [of.SetField(f, NAT) for f in rng.sample(fields, rng.choice([0, 1, 1, 2]))]
    return [*sets, of.Output(rng.choice([1, 2, of.OFPP_IN_PORT]))]


def ours_accept(m: of.Match, actions: list[of.Action]) -> bool:
    try:
        of.flow_mod(0, match=m, actions=actions)
    except of.OfError:
        return False
    return True


@needs_ofctl
def test_checks_agree_with_ovs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(6)
    cases = [(random_match(rng), random_actions(rng)) for _ in range(800)]
    verdicts = [ours_accept(m, a) for m, a in cases]
    monkeypatch.setattr(of, "_require", lambda *args: None)  # let OVS see every action
    messages = []
    for xid, (m, actions) in enumerate(cases):
        base = of.flow_mod(xid, match=of.Match(), actions=actions)
        msg = base[:48] + raw_match(m) + base[56:]
        messages.append(msg[:2] + struct.pack("!H", len(msg)) + msg[4:])
        if verdicts[xid]:  # the two encoders agree byte for byte
            assert of.flow_mod(xid, match=m, actions=actions) == messages[-1]
    ovs = ofp_parse(messages, tmp_path)
    assert len(ovs) == len(cases)
    wrong = [(cases[x], ovs[x]) for x in range(len(cases)) if verdicts[x] == ("error" in ovs[x])]
    assert not wrong, "\n".join(f"{c}\n  OVS: {text}" for c, text in wrong[:5])
    assert 150 < sum(verdicts) < 650  # both kinds well represented
