"""Link notifications under an uplink, the bonds' active slaves, and when they moved."""

from __future__ import annotations

import pathlib
import struct

from mosnet.daemon import failover
from mosnet.l2 import linkevents
from mosnet.l2.linkwatch import RTM_DELLINK, RTM_NEWLINK


def _msg(kind: int, index: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0x11043, 0) + struct.pack("=HH", 8, 3) + b"bo0\0"
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_indexes_of_link_messages_in_order() -> None:
    data = _msg(RTM_NEWLINK, 7) + _msg(20, 9) + _msg(RTM_DELLINK, 8) + _msg(RTM_NEWLINK, 7)
    assert linkevents.indexes(data) == [7, 8, 7]
    assert linkevents.indexes(data[:-3]) == [7, 8]  # truncated: what came before
    assert linkevents.indexes(struct.pack("=IHHII", 3, RTM_NEWLINK, 0, 0, 0) + data) == []


def _sysfs(tmp_path: pathlib.Path) -> pathlib.Path:
    net = tmp_path / "class/net"
    for name in ("bond0.100", "bond0", "eth0", "eth1", "eth2"):
        (net / name).mkdir(parents=True)
    (net / "bond0.100/lower_bond0").symlink_to("../bond0")
    (net / "bond0/lower_eth0").symlink_to("../eth0")
    (net / "bond0/lower_eth1").symlink_to("../eth1")
    (net / "bond0/bonding").mkdir()
    (net / "bond0/bonding/active_slave").write_text("eth0\n")
    return tmp_path


def test_the_stack_its_bonds_and_their_active_slaves(tmp_path: pathlib.Path) -> None:
    sysfs = str(_sysfs(tmp_path))
    assert linkevents.stack_below("bond0.100", sysfs) == ["bond0.100", "bond0", "eth0", "eth1"]
    assert linkevents.bonds_below("bond0.100", sysfs) == ["bond0"]
    assert linkevents.bonds_below("eth2", sysfs) == []
    assert linkevents.stack_below("gone", sysfs) == ["gone"]
    assert linkevents.active_slaves(["bond0", "gone"], sysfs) == {"bond0": "eth0", "gone": ""}


def test_a_move_is_a_new_active_slave_not_a_lost_one() -> None:
    assert failover.moved({"bond0": "eth0"}, {"bond0": "eth1"}) == ["bond0"]
    assert failover.moved({"bond0": "eth0"}, {"bond0": ""}) == []  # none left: nothing to say
    assert failover.moved({"bond0": ""}, {"bond0": "eth1"}) == ["bond0"]  # back again
    assert failover.moved({"bond0": "eth1"}, {"bond0": "eth1"}) == []
