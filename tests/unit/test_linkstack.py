"""The link stack planner: renames, bonds and VLANs become actions and candidates."""

from __future__ import annotations

from mosnet.config.cmdline import parse
from mosnet.topology.plan import plan
from mosnet.uplink.discover import Nic
from mosnet.uplink.linkstack import CreateBond, LinkStack, plan_links

NICS = (
    Nic("eth0", 2, "52:54:00:00:00:01", "virtio_net", "0000:00:03.0", ""),
    Nic("eth1", 3, "52:54:00:00:00:02", "virtio_net", "0000:00:04.0", ""),
    Nic("eth2", 4, "52:54:00:00:00:03", "virtio_net", "0000:00:05.0", ""),
)


def _stack(text: str) -> LinkStack:
    result = parse(text)
    assert result.errors == (), result.errors
    return plan_links(result.config, NICS)


def _names(stack: LinkStack) -> list[str]:
    return [n.name for n in stack.uplinks]


def test_no_link_parameters_change_nothing() -> None:
    stack = _stack("ip=dhcp")
    assert stack.actions == () and stack.uplinks == NICS


def test_a_vlan_on_an_lacp_bond_is_the_first_candidate() -> None:
    stack = _stack("bond=bond0:eth0,eth1:mode=802.3ad,lacp_rate=fast:9000 vlan=bond0.100:bond0")
    assert [str(a) for a in stack.actions] == [
        "ip link add bond0 type bond mode 802.3ad miimon 100 lacp_rate fast"
        " xmit_hash_policy layer2",
        "ip link set dev eth0 down master bond0",
        "ip link set dev eth1 down master bond0",
        "ip link set dev bond0 mtu 9000",
        "ip link set dev bond0 up",
        "ip link add link bond0 name bond0.100 type vlan id 100",
        "ip link set dev bond0.100 up",
    ]
    assert _names(stack) == ["bond0.100", "eth2"]
    top = stack.uplinks[0]
    assert (top.kind, top.mac, top.mtu) == ("vlan", "52:54:00:00:00:01", 9000)
    assert stack.uplink_of("eth1") == "bond0.100" and stack.uplink_of("eth2") == "eth2"


def test_renames_come_first_and_later_parameters_use_the_new_names() -> None:
    stack = _stack(
        "ifname=lan0:52:54:00:00:00:02 ifname=lan1:52:54:00:00:00:01 "
        "bond=bond0:lan0,lan1:mode=active-backup,primary=lan1"
    )
    lines = [str(a) for a in stack.actions]
    assert lines[:2] == [
        "ip link set dev eth1 name lan0  (ifname=lan0:52:54:00:00:00:02)",
        "ip link set dev eth0 name lan1  (ifname=lan1:52:54:00:00:00:01)",
    ]
    assert "ip link set dev lan1 down master bond0; primary lan1" in lines
    assert _names(stack) == ["bond0", "eth2"]
    assert stack.uplinks[0].mac == "52:54:00:00:00:02"  # its first slave's, lan0


def test_missing_parts_leave_the_rest_and_say_why() -> None:
    stack = _stack(
        "bond=bond0:eth7,eth8 vlan=vlan5:eth9 vlan=eth1.7:eth1 ifname=x:02:00:00:00:00:01"
    )
    assert stack.notes == (
        "ifname=x:02:00:00:00:00:01: no NIC has this MAC",
        "bond bond0: no free NIC eth7, eth8",
        "bond bond0 left out: none of its slaves",
        "vlan vlan5 left out: parent eth9 is not found",
    )
    assert _names(stack) == ["eth1.7", "eth0", "eth2"]


def test_ip_mtu_and_mac_without_interface() -> None:
    stack = _stack("ip=10.0.0.2::10.0.0.1:24:::none:1400:02:00:00:00:00:09 bond=bond0:eth0,eth1")
    assert stack.notes == ("MAC 02:00:00:00:00:09 without an interface ignored: 2 uplinks",)
    assert [(n.name, n.mtu) for n in stack.uplinks] == [("bond0", 1400), ("eth2", 1400)]
    stack = _stack("ip=:::::eth2:dhcp:1400:02:00:00:00:00:09 ip=eth0:dhcp:9000")
    assert [(n.name, n.mtu, n.mac) for n in stack.uplinks] == [
        ("eth0", 9000, "52:54:00:00:00:01"),
        ("eth1", 1500, "52:54:00:00:00:02"),
        ("eth2", 1400, "02:00:00:00:00:09"),
    ]


def test_the_plan_prints_the_links_and_carries_the_mtu_to_the_bridge() -> None:
    cfg = parse("bond=bond0:eth0,eth1:mode=802.3ad:9000 mosip4=10.0.0.2,10.0.0.1,24,bond0")
    stack = plan_links(cfg.config, NICS)
    text = plan(cfg.config, stack.uplinks, links=stack, ovs_available=False).render()
    assert text.index("links (before the probe):") < text.index("actions:")
    assert "ip link set dev mos-br mtu 9000" not in text  # static mode: public
    for dev in ("public", "public-br", "br-mosnet"):
        assert f"ip link set dev {dev} mtu 9000" in text, dev
    assert "mode static, uplink bond0" in text
    ovs = plan(parse("bond=bond0:eth0,eth1::9000 mosbridge=ovs").config, stack.uplinks,
               "bond0", links=stack).render()  # fmt: skip
    assert "add-port bond0 ofport 1" in ovs and "mtu_request=9000" in ovs


def test_an_existing_bond_or_vlan_of_that_name_is_reused_not_a_conflict() -> None:
    """bonding's own bond0, or a second apply: named by ip=, so it is in the list."""
    bond0 = Nic("bond0", 9, "ba:15:40:1b:54:9a", "", "", "bond")
    vlan = Nic("bond0.5", 10, "ba:15:40:1b:54:9a", "", "", "vlan")
    eth9 = Nic("bond0.6", 11, "ba:15:40:1b:54:9b", "", "", "")
    cfg = parse("bond=bond0:eth0,eth1 vlan=bond0.5:bond0 vlan=bond0.6:bond0").config
    stack = plan_links(cfg, (*NICS, bond0, vlan, eth9))
    assert _names(stack) == ["bond0.5", "bond0.6", "eth2"]
    assert stack.notes == ("vlan bond0.6 left out: a link has that name",)
    assert sum(isinstance(a, CreateBond) for a in stack.actions) == 1
