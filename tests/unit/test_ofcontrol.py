"""The OpenFlow controller (mosnet.ovs.ofcontrol.Controller): connecting, echo, errors, garbage.

Messages are built and taken apart by hand (tests/unit/helpers/of_control.py);
the clock is injected.
"""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.l2 import frames
from mosnet.ovs import ofcontrol, ofrules
from mosnet.ovs import openflow as of
from mosnet.ovs.ofcontrol import Controller
from mosnet.ovs.ofrules import KIND_ADDR, KIND_BASE, KIND_GUEST, Guest, cookie
from tests.unit.helpers.of_control import (
    BASE,
    CFG,
    GUEST,
    GUEST4,
    GUEST_COOKIE,
    GW4,
    HOST4,
    HOST6,
    NAT,
    OFPRR_IDLE_TIMEOUT,
    OFPT_BARRIER_REQUEST,
    OFPT_ECHO_REPLY,
    OFPT_ECHO_REQUEST,
    OFPT_FLOW_REMOVED,
    OFPT_PACKET_IN,
    OFPT_SET_CONFIG,
    PROVIDER,
    Clock,
    FlowMod,
    Other,
    adds,
    assert_delete_by_cookie,
    flow_removed,
    guest_arp,
    guest_na,
    header,
    learned,
    learned_index,
    make,
    packet_in,
    parse,
    parse_all,
    uplink_arp,
    uplink_ns,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
OVS_OFCTL = shutil.which("ovs-ofctl") or shutil.which("ovs-ofctl", path="/usr/bin")


# --- connect ------------------------------------------------------------------------


def test_connected_sets_config_replaces_the_base_flows_and_ends_with_a_barrier() -> None:
    ctl, _ = make()
    out = parse_all(ctl.connected())
    first, delete, *added, last = out
    assert isinstance(first, Other) and first.type == OFPT_SET_CONFIG
    assert struct.unpack("!HH", first.body) == (0, 0xFFFF)  # whole packets to us
    assert isinstance(delete, FlowMod)
    assert_delete_by_cookie(delete, BASE)
    assert isinstance(last, Other) and last.type == OFPT_BARRIER_REQUEST
    assert adds(out) == ofrules.base_flows([])
    assert len(added) == 7
    xids = [m.xid for m in out]
    assert len(set(xids)) == len(xids)


def test_connected_uses_the_injected_xids() -> None:
    ctl = Controller(CFG, Clock(), xids=itertools.count(0xABC0))
    out = parse_all(ctl.connected())
    assert [m.xid for m in out] == list(range(0xABC0, 0xABC0 + len(out)))


def test_connected_after_learning_restores_guest_flows_too() -> None:
    ctl, _ = make()
    learned(ctl)
    out = parse_all(ctl.connected())
    assert adds(out, KIND_BASE) == ofrules.base_flows([3])
    assert adds(out, KIND_GUEST) == ofrules.guest_flows(Guest(3, GUEST), NAT, [3])
    assert isinstance(out[-1], Other) and out[-1].type == OFPT_BARRIER_REQUEST


def test_restore_messages_are_the_base_flows() -> None:
    out = parse_all(ofcontrol.restore_messages((5, 6)))
    assert isinstance(out[0], FlowMod)
    assert_delete_by_cookie(out[0], BASE)
    assert adds(out) == ofrules.base_flows([5, 6]) and len(out) == 8


# --- echo, hello, errors, garbage ---------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"ping", bytes(range(256))])
def test_echo_request_gets_a_reply_with_the_same_xid_and_data(data: bytes) -> None:
    ctl, _ = make()
    (reply,) = ctl.handle(header(OFPT_ECHO_REQUEST, 0xDEADBEEF, data))
    assert reply == header(OFPT_ECHO_REPLY, 0xDEADBEEF, data)


def test_hello_echo_reply_and_barrier_reply_need_no_answer() -> None:
    ctl, _ = make()
    assert ctl.handle(of.hello(5)) == []
    assert ctl.handle(header(OFPT_ECHO_REPLY, 1, b"x")) == []
    assert ctl.handle(header(21, 2, b"")) == []


def test_switch_errors_are_counted() -> None:
    ctl, _ = make()
    assert ctl.handle(header(1, 9, struct.pack("!HH", 4, 9) + b"\x04\x0e\x00\x48")) == []
    assert ctl.stats.errors == 1


@pytest.mark.parametrize(
    "msg",
    [
        b"",
        b"\x04",
        b"\x04\x0a\x00\x08",
        header(OFPT_PACKET_IN, 1, b"")[:-1] + b"\0\0",  # length field disagrees
        header(OFPT_PACKET_IN, 1, b"\0" * 4),  # truncated packet-in
        packet_in(frames.arp_request(PROVIDER, GW4, HOST4).frame(), 1, version=1),
        packet_in(b"", 1)[:-2],  # no padding after the match
        header(OFPT_PACKET_IN, 1, struct.pack("!IHBBQ", 0, 0, 0, 0, 0) + b"\0\x02\0\x40"),
        header(OFPT_FLOW_REMOVED, 1, b"\xff" * 10),
        b"\xff" * 64,
    ],
)
def test_undecodable_messages_are_counted_not_raised(msg: bytes) -> None:
    ctl, _ = make()
    assert ctl.handle(msg) == []
    assert ctl.stats.errors == 1


@FUZZ
@given(st.binary(max_size=200))
def test_handle_never_raises_on_bytes(msg: bytes) -> None:
    ctl, _ = make()
    for reply in ctl.handle(msg):
        parse(reply)


@FUZZ
@given(st.binary(max_size=120), st.integers(3, of.OVS_PORTS - 1), st.sampled_from([BASE, 0]))
def test_handle_never_raises_on_packet_ins_from_guest_ports(
    frame: bytes, port: int, pin_cookie: int
) -> None:
    ctl, _ = make()
    for reply in ctl.handle(packet_in(frame, port, pin_cookie)):
        parse(reply)
    for reply in ctl.handle(packet_in(frame, 1, pin_cookie)):
        parse(reply)


@pytest.mark.parametrize("port", [0, of.OVS_PORTS, 0xFFFFFEFF])
def test_handle_never_raises_on_out_of_range_in_ports(port: int) -> None:
    ctl, _ = make()
    assert ctl.handle(packet_in(guest_arp(), port)) == []
    assert ctl.guests == {}


# --- OVS reads it -------------------------------------------------------------------


@pytest.mark.skipif(OVS_OFCTL is None, reason="ovs-ofctl is not installed")
def test_ovs_ofctl_decodes_everything_the_controller_sends() -> None:
    assert OVS_OFCTL is not None
    ctl, _ = make()
    msgs = [*ctl.connected(), *ctl.handle(packet_in(guest_arp(), 3))]
    msgs += ctl.handle(packet_in(guest_na(), 3, GUEST_COOKIE))
    msgs += ctl.handle(packet_in(uplink_arp(GUEST4), 1))
    msgs += ctl.handle(packet_in(uplink_ns(HOST6), 1))
    index = learned_index(ctl, GUEST4)
    msgs += ctl.handle(flow_removed(cookie(KIND_ADDR, index), OFPRR_IDLE_TIMEOUT, GUEST4))
    msgs += ctl.handle(header(OFPT_ECHO_REQUEST, 7, b"abc"))
    kinds = set()
    for msg in msgs:
        res = subprocess.run([OVS_OFCTL, "ofp-print", msg.hex()], capture_output=True,
                             text=True, timeout=10)  # fmt: skip
        text = res.stdout + res.stderr
        assert res.returncode == 0, text
        for word in ("error", "bad", "truncated", "warn"):
            assert word not in text.lower(), text
        kinds.add(res.stdout.split(" ", 1)[0])
    assert kinds == {"OFPT_SET_CONFIG", "OFPT_FLOW_MOD", "OFPT_BARRIER_REQUEST",
                     "OFPT_PACKET_OUT", "OFPT_ECHO_REPLY"}  # fmt: skip
