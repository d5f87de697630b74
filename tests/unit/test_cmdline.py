"""Kernel command line → NetConfig: every good form, and the notes on valid ones."""

from __future__ import annotations

from ipaddress import IPv4Address as V4
from ipaddress import IPv6Address as V6

import pytest

from mosnet.config import cmdline
from mosnet.config.model import (
    DhcpSpec,
    FirewallSpec,
    Ip4Static,
    Ip6Static,
    LinkSetting,
    NatSpec,
    NetConfig,
    PortForward,
)
from tests.unit.helpers.cmdline_parse import P, ok

# --- good forms ------------------------------------------------------------------

GOOD: list[tuple[str, NetConfig]] = [
    ("", NetConfig()),
    ("quiet root=/dev/sda1 console=ttyS0", NetConfig()),
    (
        "mosip4=192.168.1.10,192.168.1.1,255.255.255.0",
        NetConfig(ip4=Ip4Static(V4("192.168.1.10"), V4("192.168.1.1"), 24)),
    ),
    (
        "mosip4=136.243.10.20,136.243.10.1,255.255.255.255 mosip6=2a01:4f8:c17:1234::1/128,fe80::1",
        NetConfig(
            ip4=Ip4Static(V4("136.243.10.20"), V4("136.243.10.1"), 32),
            ip6=Ip6Static(V6("2a01:4f8:c17:1234::1"), 128, V6("fe80::1")),
        ),
    ),
    (
        "mosip4=192.168.1.10,192.168.1.1,255.255.255.0,enp3s0 "
        "mosip6=2001:db8::1/64,2001:db8::ffff,enp3s0",
        NetConfig(
            ip4=Ip4Static(V4("192.168.1.10"), V4("192.168.1.1"), 24, "enp3s0"),
            ip6=Ip6Static(V6("2001:db8::1"), 64, V6("2001:db8::ffff"), "enp3s0"),
        ),
    ),
    ("mosip4=10.1.2.3,10.1.0.1,/16", NetConfig(ip4=Ip4Static(V4("10.1.2.3"), V4("10.1.0.1"), 16))),
    ("mosip4=10.1.2.3,10.1.0.1,16", NetConfig(ip4=Ip4Static(V4("10.1.2.3"), V4("10.1.0.1"), 16))),
    (
        "mosdhcp_timeout=30 mosdhcp_prefer_private=no",
        NetConfig(dhcp=DhcpSpec(timeout=30.0, prefer_private=False)),
    ),
    ("mosdhcp_timeout=2.5 mosdhcp_prefer_private=ON", NetConfig(dhcp=DhcpSpec(timeout=2.5))),
    ("mosfirewall=ssh", NetConfig(firewall=FirewallSpec("ssh"))),
    (
        "mosfirewall=none,tcp:22,80,443,8080,udp:53",
        NetConfig(
            firewall=FirewallSpec(
                "none", (P(22, 22), P(80, 80), P(443, 443), P(8080, 8080)), (P(53, 53),)
            )
        ),
    ),
    (
        "mosfirewall=permissive,tcp:8000-8100,22,22,udp:51820,",
        NetConfig(
            firewall=FirewallSpec("permissive", (P(8000, 8100), P(22, 22)), (P(51820, 51820),))
        ),
    ),
    ("mosnat=snat", NetConfig(nat=NatSpec("snat"))),
    ("mosnat=none", NetConfig(nat=NatSpec("none"))),
    ("mosnat=eth0", NetConfig(nat=NatSpec("iface", "eth0"))),
    (
        "mosnat=snat,8080:192.168.1.100:80/tcp,53:192.168.1.53:53/udp",
        NetConfig(
            nat=NatSpec(
                "snat",
                None,
                (
                    PortForward(8080, V4("192.168.1.100"), 80, "tcp"),
                    PortForward(53, V4("192.168.1.53"), 53, "udp"),
                ),
            )
        ),
    ),
    ("mosbridge=linux", NetConfig(bridge="linux")),
    ("mosbridge=ovs mosbridge=auto", NetConfig(bridge="auto")),
    ("BOOTIF=01-AA-bb-cc-dd-ee-f0", NetConfig(bootif="aa:bb:cc:dd:ee:f0")),
    ("BOOTIF=52-54-00-12-34-56", NetConfig(bootif="52:54:00:12:34:56")),
    (
        "ifname=lan0:52:54:00:12:34:56 ifname=lan1:52-54-00-12-34-57 ifname=lan0:52:54:00:12:34:56",
        NetConfig(ifnames=(("lan0", "52:54:00:12:34:56"), ("lan1", "52:54:00:12:34:57"))),
    ),
    (
        "nameserver=1.1.1.1 nameserver=2606:4700::1111 nameserver=1.1.1.1 nameserver=[::1]",
        NetConfig(nameservers=(V4("1.1.1.1"), V6("2606:4700::1111"), V6("::1"))),
    ),
    # ip= (kernel and dracut dialects)
    ("ip=dhcp", NetConfig()),
    ("ip=eth0:dhcp", NetConfig(dhcp=DhcpSpec(devices=("eth0",)))),
    ("ip=eth0:dhcp ip=eth1:on ip=eth0:any", NetConfig(dhcp=DhcpSpec(devices=("eth0", "eth1")))),
    ("ip=eth0:dhcp ip=dhcp", NetConfig()),
    ("ip=:::::eth2:dhcp", NetConfig(dhcp=DhcpSpec(devices=("eth2",)))),
    (
        "ip=10.0.0.2::10.0.0.1:255.255.255.0:web1:eth0:none",
        NetConfig(ip4=Ip4Static(V4("10.0.0.2"), V4("10.0.0.1"), 24, "eth0", "ip"), hostname="web1"),
    ),
    (
        "ip=10.0.0.2::10.0.0.1:24::eth0:off:10.0.0.53:[2001:db8::53] nameserver=10.0.0.53",
        NetConfig(
            ip4=Ip4Static(V4("10.0.0.2"), V4("10.0.0.1"), 24, "eth0", "ip"),
            nameservers=(V4("10.0.0.53"), V6("2001:db8::53")),
        ),
    ),
    (
        "ip=[2001:db8::2]:[2001:db8::1]/64:[fe80::1]:64:host6.example:eth0:none",
        NetConfig(
            ip6=Ip6Static(V6("2001:db8::2"), 64, V6("fe80::1"), "eth0", "ip"),
            hostname="host6.example",
        ),
    ),
    (
        "ip=[2001:db8::2]::[fe80::1]:64::eth0:none "
        "ip=192.0.2.5::192.0.2.1:255.255.255.0:h:eth0:static",
        NetConfig(
            ip4=Ip4Static(V4("192.0.2.5"), V4("192.0.2.1"), 24, "eth0", "ip"),
            ip6=Ip6Static(V6("2001:db8::2"), 64, V6("fe80::1"), "eth0", "ip"),
            hostname="h",
        ),
    ),
    (
        "ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:none:1500:52:54:00:12:34:56",
        NetConfig(
            ip4=Ip4Static(V4("10.0.0.2"), V4("10.0.0.1"), 24, "eth0", "ip"),
            link_settings=(LinkSetting("eth0", 1500, "52:54:00:12:34:56"),),
        ),
    ),
    ("ip=10.0.0.2", NetConfig(ip4=Ip4Static(V4("10.0.0.2"), None, 8, None, "ip"))),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[t[:60] for t, _ in GOOD])
def test_good_forms(text: str, expected: NetConfig) -> None:
    assert ok(text).config == expected


def test_mode_and_device_properties() -> None:
    cfg = ok("mosip6=2001:db8::1/64,fe80::1,eno1").config
    assert cfg.mode == "static" and cfg.device == "eno1"
    assert ok("ip=eth0:dhcp").config.mode == "dhcp"


@pytest.mark.parametrize(
    ("text", "devices"),
    [
        ("ip=dhcp6", ()),
        ("ip=either6", ()),
        ("ip=eth0:dhcp6", ("eth0",)),
        ("ip=:::::eth1:dhcp6", ("eth1",)),
    ],
)
def test_dhcp6_forms_ask_for_a_dhcpv6_client(text: str, devices: tuple[str, ...]) -> None:
    result = cmdline.parse(text)
    assert result.errors == () and result.notes == ()
    assert result.config.mode == "dhcp"
    assert result.config.dhcp.dhcp6 is True
    assert result.config.dhcp.devices == devices
    assert cmdline.parse("ip=dhcp").config.dhcp.dhcp6 is False


# --- notes (valid but informational) -----------------------------------------------

NOTES = [
    (
        "mosip4=10.0.0.5,10.0.0.1,255.255.255.0 ip=10.0.0.2::10.0.0.1:24::eth0:none",
        "mosip4 given: ignoring ip=10.0.0.2::10.0.0.1:24::eth0:none for IPv4",
    ),
    (
        "mosip6=2001:db8::5/64,fe80::1 ip=[2001:db8::2]::[fe80::1]:64::eth0:none",
        "mosip6 given: ignoring ip=[2001:db8::2]::[fe80::1]:64::eth0:none for IPv6",
    ),
    ("ip=auto6", "ip=auto6: not supported yet, ignored"),
    ("ip=eth0:auto6", "ip=eth0:auto6: auto6 not supported yet, ignored"),
    ("ip=::::::ibft", "ip=::::::ibft: ibft not supported yet, ignored"),
    ("ip=off rd.neednet=1", "rd.neednet=1 given: ip=off ignored"),
    ("ip=none mosip4=10.0.0.2,10.0.0.1,24", "ip=off ignored: a static address is given"),
    ("mosfirewal=ssh", "unknown parameter 'mosfirewal' ignored (typo?)"),
    ("mosbridge=ovs mosbridge=linux", "mosbridge given 2 times: the last valid one wins"),
    ("mosnat=none,80:10.0.0.2:80/tcp", "mosnat=none: port forwards ignored"),
    (
        "ip=10.0.0.2::10.0.0.1",
        "ip=10.0.0.2::10.0.0.1: no netmask, classful /8 assumed as the kernel does",
    ),
]


@pytest.mark.parametrize(("text", "note"), NOTES)
def test_notes(text: str, note: str) -> None:
    assert note in ok(text).notes


def test_mosip4_wins_over_ip_but_ip_keeps_hostname_and_dns() -> None:
    r = ok("ip=10.0.0.2::10.0.0.1:24:box:eth0:none:10.0.0.53 mosip4=10.9.0.5,10.9.0.1,24")
    assert r.config.ip4 == Ip4Static(V4("10.9.0.5"), V4("10.9.0.1"), 24)
    assert r.config.hostname == "box" and r.config.nameservers == (V4("10.0.0.53"),)


def test_invalid_mosip4_falls_back_to_ip() -> None:
    r = cmdline.parse("mosip4=10.9.0.5,10.9.0.5,24 ip=10.0.0.2::10.0.0.1:24::eth0:none")
    assert [e.param for e in r.errors] == ["mosip4"]
    assert r.config.ip4 is not None and r.config.ip4.source == "ip"
    assert any("mosip4 invalid: using ip=" in n for n in r.notes)
