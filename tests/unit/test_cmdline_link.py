"""dracut's link parameters: bond=, vlan=, the ip= MTU/MAC/hostname fields, ip=off, rd.*."""

from __future__ import annotations

import pytest

from mosnet.config.cmdline import parse
from mosnet.config.model import BondSpec, LinkSetting, VlanSpec


def _one(text: str) -> tuple[object, tuple[str, ...]]:
    r = parse(text)
    return r.config, tuple(str(e) for e in r.errors)


@pytest.mark.parametrize(
    ("text", "bond"),
    [
        ("bond", BondSpec("bond0")),
        ("bond=bond1", BondSpec("bond1")),
        ("bond=b0:eno1,eno2", BondSpec("b0", ("eno1", "eno2"))),
        (
            "bond=bond0:eth0,eth1:mode=802.3ad,miimon=50,lacp_rate=fast,"
            "xmit_hash_policy=layer3+4:9000",
            BondSpec(
                "bond0",
                mode="802.3ad",
                miimon=50,
                lacp_rate="fast",
                xmit_hash_policy="layer3+4",
                mtu=9000,
            ),  # fmt: skip
        ),
        (
            "bond=bond0:eth0,eth1:mode=1,primary=eth1,updelay=200,downdelay=100",
            BondSpec("bond0", mode="active-backup", primary="eth1", updelay=200, downdelay=100),
        ),
        (
            "bond=bond0:eth0,eth1:MODE=Balance-XOR,lacp_rate=1",
            BondSpec("bond0", mode="balance-xor", lacp_rate="fast"),
        ),  # fmt: skip
    ],
)
def test_bond_forms(text: str, bond: BondSpec) -> None:
    cfg, errors = _one(text)
    assert errors == ()
    assert cfg.bonds == (bond,)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("bond=bond0:eth0,eth1:mode=lacp", "mode=lacp"),
        ("bond=bond0:eth0,eth1:mode=7", "mode=7"),
        ("bond=bond0:eth0,eth1:miimon=²", "²"),
        ("bond=bond0:eth0,eth1:miimon=60001", "60001"),
        ("bond=bond0:eth0,eth1:arp_interval=100", "arp_interval=100"),
        ("bond=bond0:eth0,eth0", "eth0,eth0"),
        ("bond=bond0:bond0,eth1", "bond0,eth1"),
        ("bond=bond0:eth0,eth1:mode=1,primary=eth2", "primary=eth2"),
        ("bond=bond0:eth0,eth1::67", "67"),
        ("bond=bond0:eth0/x", "eth0/x"),
        ("bond=a:b:c:1500:e", "a:b:c:1500:e"),
    ],
)
def test_a_bad_bond_is_rejected_whole_and_named(text: str, token: str) -> None:
    r = parse(f"{text} mosip4=10.0.0.2,10.0.0.1,24 vlan=eth0.7:eth0")
    assert r.config.bonds == ()
    assert len(r.errors) == 1 and r.errors[0].token == token, r.errors
    assert r.config.ip4 is not None and r.config.vlans  # the rest applies


def test_two_bonds_may_not_share_slaves() -> None:
    r = parse("bond=bond0:eth0,eth1 bond=bond1:eth1,eth2 bond=bond2:eth2,eth3")
    assert [b.name for b in r.config.bonds] == ["bond0", "bond2"]
    assert [e.param for e in r.errors] == ["bond"]


@pytest.mark.parametrize(
    ("text", "vlan"),
    [
        ("vlan=vlan5:eth0", VlanSpec("vlan5", "eth0", 5)),
        ("vlan=vlan0005:eth0", VlanSpec("vlan0005", "eth0", 5)),
        ("vlan=eth0.100:eth0", VlanSpec("eth0.100", "eth0", 100)),
        ("vlan=bond0.4094:bond0", VlanSpec("bond0.4094", "bond0", 4094)),
    ],
)
def test_vlan_forms(text: str, vlan: VlanSpec) -> None:
    cfg, errors = _one(text)
    assert errors == () and cfg.vlans == (vlan,)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        "vlan=eth0.0:eth0",
        "vlan=eth0.4095:eth0",
        "vlan=mgmt:eth0",
        "vlan=vlan5",
        "vlan=vlan5:",
        "vlan=vlan٣:eth0",
        "vlan=eth0.5:eth0.5",
    ],  # fmt: skip
)
def test_bad_vlans_are_rejected(text: str) -> None:
    r = parse(text + " vlan=vlan9:eth1")
    assert [v.name for v in r.config.vlans] == ["vlan9"] and len(r.errors) == 1, r.errors


@pytest.mark.parametrize(
    ("text", "setting", "hostname"),
    [
        ("ip=eth0:dhcp:9000", LinkSetting("eth0", 9000, None), None),
        ("ip=eth0:dhcp::52:54:00:aa:bb:cc", LinkSetting("eth0", None, "52:54:00:aa:bb:cc"), None),
        ("ip=::::web1:bond0:dhcp:9000", LinkSetting("bond0", 9000, None), "web1"),
        ("ip=10.0.0.2::10.0.0.1:24:web2::none:1400", LinkSetting(None, 1400, None), "web2"),
    ],
)
def test_ip_mtu_mac_and_hostname_are_kept(
    text: str, setting: LinkSetting, hostname: str | None
) -> None:
    cfg, errors = _one(text)
    assert errors == ()
    assert cfg.link_settings == (setting,) and cfg.hostname == hostname  # type: ignore[attr-defined]


def test_a_bad_mtu_costs_only_itself() -> None:
    r = parse("ip=eth0:dhcp:20:52:54:00:aa:bb:cc")
    assert r.config.link_settings == (LinkSetting("eth0", None, "52:54:00:aa:bb:cc"),)
    assert r.config.dhcp.devices == ("eth0",) and [e.token for e in r.errors] == ["20"]


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("", True),
        ("ip=off", False),
        ("ip=none", False),
        ("ip=dhcp", True),
        ("rd.neednet=0", False),
        ("ip=off rd.neednet=1", True),
        ("ip=off rd.neednet", True),
        ("ip=off mosip4=10.0.0.2,10.0.0.1,24", True),
        ("rd.neednet=0 ip=dhcp", False),
    ],  # fmt: skip
)
def test_network_off(text: str, network: bool) -> None:
    assert parse(text).config.network is network


def test_rd_flags() -> None:
    cfg = parse("rd.peerdns=0 rd.bootif=no BOOTIF=01-52-54-00-12-34-56").config
    assert (cfg.peerdns, cfg.use_bootif, cfg.bootif) == (False, False, "52:54:00:12:34:56")
    cfg = parse("rd.peerdns=maybe").config
    assert cfg.peerdns is True and parse("rd.peerdns=maybe").errors[0].param == "rd.peerdns"
