"""Kernel command line → NetConfig: every error, and what still applies around it."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address as V4
from ipaddress import IPv6Address as V6

import pytest

from mosnet.config import cmdline
from mosnet.config.model import (
    DhcpSpec,
    FirewallSpec,
    Ip4Static,
    Ip6Static,
    NatSpec,
    PortForward,
)
from tests.unit.helpers.cmdline_parse import P, ok

# --- errors: (cmdline, param, token, a fragment of expected) ---------------------------------

BAD = [
    ("mosip4=192.168.1.300,192.168.1.1,255.255.255.0", "mosip4", "192.168.1.300", "IPv4"),
    ("mosip4=192.168.1.10,192.168.1.1", "mosip4", "192.168.1.10,192.168.1.1", "<netmask>"),
    ("mosip4=192.168.1.10,192.168.1.1,255.0.255.0", "mosip4", "255.0.255.0", "contiguous"),
    ("mosip4=192.168.1.10,192.168.1.1,33", "mosip4", "33", "prefix length 0-32"),
    ("mosip4=192.168.1.10,192.168.1.10,255.255.255.0", "mosip4", "192.168.1.10", "different"),
    ("mosip4=192.168.1.0,192.168.1.1,255.255.255.0", "mosip4", "192.168.1.0", "network/broadcast"),
    ("mosip4=224.0.0.1,192.168.1.1,255.255.255.0", "mosip4", "224.0.0.1", "unicast"),
    ("mosip4=10.0.0.2,10.0.0.1,24,eth/0", "mosip4", "eth/0", "interface name"),
    (
        "mosip4=10.0.0.2,10.0.0.1,24,averyveryverylongname",
        "mosip4",
        "averyveryverylongname",
        "1-15",
    ),
    ("mosip4=10.0.0.2,10.0.0.1,24,..", "mosip4", "..", "interface name"),
    ("mosip4", "mosip4", "", "<address>,<gateway>,<netmask>"),
    ("mosip6=2001:db8::1,fe80::1", "mosip6", "2001:db8::1,fe80::1", "<address>/<prefix>"),
    ("mosip6=2001:db8::1/129,fe80::1", "mosip6", "129", "0-128"),
    ("mosip6=2001:db8::1/x,fe80::1", "mosip6", "x", "0-128"),
    ("mosip6=ff02::1/64,fe80::1", "mosip6", "ff02::1", "unicast IPv6"),
    ("mosip6=2001:db8::1/64,::", "mosip6", "::", "unicast IPv6"),
    ("mosip6=2001:db8::1/64,fe80::1%eth0", "mosip6", "fe80::1%eth0", "no %scope"),
    ("mosip6=2001:db8::1/64,2001:db8::1", "mosip6", "2001:db8::1", "different"),
    ("mosip6=2001:db8::1/64,fe80::1,a:b", "mosip6", "a:b", "interface name"),
    ("mosdhcp_timeout=0", "mosdhcp_timeout", "0", "> 0"),
    ("mosdhcp_timeout=3601", "mosdhcp_timeout", "3601", "<= 3600"),
    ("mosdhcp_timeout=1e3", "mosdhcp_timeout", "1e3", "seconds"),
    ("mosdhcp_timeout=-5", "mosdhcp_timeout", "-5", "seconds"),
    ("mosdhcp_prefer_private=maybe", "mosdhcp_prefer_private", "maybe", "yes|no"),
    ("mosfirewall=ssh,tcp:0", "mosfirewall", "0", "1-65535"),
    ("mosfirewall=ssh,tcp:65536", "mosfirewall", "65536", "1-65535"),
    ("mosfirewall=ssh,udp:abc", "mosfirewall", "abc", "1-65535"),
    ("mosfirewall=ssh,tcp:9-3", "mosfirewall", "9-3", "first <= last"),
    ("mosfirewall=ssh,tcp:", "mosfirewall", "", "1-65535"),
    ("mosfirewall=shh,tcp:22", "mosfirewall", "shh", "firewall left unconfigured"),
    ("mosfirewall=ssh,sctp:5", "mosfirewall", "sctp:5", "unknown protocol"),
    ("mosfirewall=ssh,22", "mosfirewall", "22", "before the first port"),
    ("mosnat=snat,8080:192.168.1.100:80", "mosnat", "8080:192.168.1.100:80", "/tcp|udp"),
    ("mosnat=snat,8080:192.168.1.100:80/icmp", "mosnat", "8080:192.168.1.100:80/icmp", "tcp|udp"),
    ("mosnat=snat,0:192.168.1.100:80/tcp", "mosnat", "0:192.168.1.100:80/tcp", "<ext-port>"),
    ("mosnat=snat,80:2001:db8::1:80/tcp", "mosnat", "80:2001:db8::1:80/tcp", "<ipv4>"),
    (
        "mosnat=snat,80:10.0.0.2:80/tcp,80:10.0.0.3:81/tcp",
        "mosnat",
        "80:10.0.0.3:81/tcp",
        "not forwarded yet",
    ),
    ("mosnat=bad/iface", "mosnat", "bad/iface", "snat, none or an interface name"),
    ("mosbridge=vpp", "mosbridge", "vpp", "ovs|linux|auto"),
    ("BOOTIF=01-aa-bb-cc-dd-ee", "BOOTIF", "01-aa-bb-cc-dd-ee", "01-aa-bb-cc-dd-ee-ff"),
    ("BOOTIF=20-aa-bb-cc-dd-ee-ff", "BOOTIF", "20-aa-bb-cc-dd-ee-ff", "01-aa-bb-cc-dd-ee-ff"),
    ("BOOTIF=01-01-00-5e-00-00-01", "BOOTIF", "01-01-00-5e-00-00-01", "unicast"),
    ("ifname=lan0:52:54:00:12:34", "ifname", "52:54:00:12:34", "MAC"),
    ("ifname=lan0:00:00:00:00:00:00", "ifname", "00:00:00:00:00:00", "unicast"),
    ("ifname=lan0", "ifname", "lan0", "<name>:<mac>"),
    ("ifname=a/b:52:54:00:12:34:56", "ifname", "a/b", "interface name"),
    (
        "ifname=lan0:52:54:00:12:34:56 ifname=lan1:52:54:00:12:34:56",
        "ifname",
        "lan1:52:54:00:12:34:56",
        "not used yet",
    ),
    ("nameserver=dns.example", "nameserver", "dns.example", "IPv4 or IPv6"),
    ("nameserver=224.0.0.251", "nameserver", "224.0.0.251", "IPv4 or IPv6"),
    ("ip=bogus", "ip", "bogus", "dhcp|on|any"),
    ("ip=eth0:static6", "ip", "static6", "dhcp|on|any"),
    ("ip=10.0.0.300::10.0.0.1:24::eth0:none", "ip", "10.0.0.300", "IPv4"),
    ("ip=10.0.0.2::10.0.0.1:255.0.255.0::eth0:none", "ip", "255.0.255.0", "contiguous"),
    ("ip=10.0.0.2::10.0.0.2:24::eth0:none", "ip", "10.0.0.2", "different"),
    ("ip=10.0.0.2::10.0.0.1:24::eth0:bogus", "ip", "bogus", "none|off|static"),
    ("ip=10.0.0.2::[fe80::1]:24::eth0:none", "ip", "[fe80::1]", "IPv4"),
    ("ip=[2001:db8::2]::fe80::1:64::eth0:none", "ip", "fe80", "in [ ]"),
    ("ip=[2001:db8::2]::[fe80::1]:200::eth0:none", "ip", "200", "0-128"),
    (
        "ip=[2001:db8::2::[fe80::1]:64::eth0:none",
        "ip",
        "[2001:db8::2::[fe80::1]:64::eth0:none",
        "balanced",
    ),
    ("ip=10.0.0.2::10.0.0.1:24::e:t:none", "ip", "t", "none|off|static"),
    ("ip=10.0.0.2::10.0.0.1:24::eth0/1:none", "ip", "eth0/1", "interface name"),
    ("ip=:::::eth0:none", "ip", ":::::eth0:none", "client address"),
]


@pytest.mark.parametrize(("text", "param", "token", "expected"), BAD, ids=[b[0][:60] for b in BAD])
def test_each_malformed_value_gives_exactly_one_error(
    text: str, param: str, token: str, expected: str
) -> None:
    result = cmdline.parse(text)
    assert len(result.errors) == 1, cmdline.format_errors(result.errors)
    err = result.errors[0]
    assert (err.param, err.token) == (param, token)
    assert expected in err.expected
    assert param in str(err) and repr(token) in str(err)


SOFT_IP = [  # bad optional ip= fields: an error, yet the address still applies
    ("ip=10.0.0.2::10.0.0.1:24:bad_host:eth0:none", "bad_host", "host name"),
    ("ip=10.0.0.2::10.0.0.1:24::eth0:none:10.0.0.999", "10.0.0.999", "IPv4 or IPv6"),
    ("ip=10.0.0.2:10.0.0.999:10.0.0.1:24::eth0:none", "10.0.0.999", "IPv4"),
    ("ip=10.0.0.2::10.0.0.1:24::eth0:none:20", "20", "MTU 68-65535"),
]


@pytest.mark.parametrize(("text", "token", "expected"), SOFT_IP)
def test_bad_optional_ip_field_keeps_address(text: str, token: str, expected: str) -> None:
    result = cmdline.parse(text)
    assert [(e.param, e.token) for e in result.errors] == [("ip", token)]
    assert expected in result.errors[0].expected
    assert result.config.ip4 == Ip4Static(V4("10.0.0.2"), V4("10.0.0.1"), 24, "eth0", "ip")


# --- the rest still applies ------------------------------------------------------------


def test_bad_port_drops_only_that_port() -> None:
    r = cmdline.parse("mosfirewall=ssh,tcp:22,0,80,udp:99999,53")
    assert [e.token for e in r.errors] == ["0", "99999"]
    assert r.config.firewall == FirewallSpec("ssh", (P(22, 22), P(80, 80)), (P(53, 53),))


def test_unknown_protocol_drops_its_ports_only() -> None:
    r = cmdline.parse("mosfirewall=none,sctp:5,6,udp:53")
    assert [e.token for e in r.errors] == ["sctp:5"]
    assert r.config.firewall == FirewallSpec("none", (), (P(53, 53),))
    assert "mosfirewall: ports 6 dropped with their bad protocol" in r.notes


def test_unknown_preset_leaves_firewall_unset_but_reports_bad_ports() -> None:
    r = cmdline.parse("mosfirewall=strict,tcp:0")
    assert [e.token for e in r.errors] == ["strict", "0"]
    assert r.config.firewall is None


def test_bad_forward_drops_only_that_forward() -> None:
    r = cmdline.parse("mosnat=eth1,8080:10.0.0.2:80/tcp,junk,53:10.0.0.3:53/udp")
    assert [e.token for e in r.errors] == ["junk"]
    assert r.config.nat == NatSpec(
        "iface",
        "eth1",
        (PortForward(8080, V4("10.0.0.2"), 80, "tcp"), PortForward(53, V4("10.0.0.3"), 53, "udp")),
    )


def test_one_bad_param_does_not_affect_the_others() -> None:
    r = cmdline.parse(
        "mosip4=10.0.0.2,10.0.0.1,255.0.255.0 mosip6=2001:db8::1/64,fe80::1 "
        "mosdhcp_timeout=abc mosbridge=linux BOOTIF=zz nameserver=1.1.1.1 nameserver=x "
        "nameserver=9.9.9.9 ifname=lan0:52:54:00:12:34:56 mosfirewall=ssh,tcp:2222"
    )
    assert [e.param for e in r.errors] == ["mosip4", "mosdhcp_timeout", "BOOTIF", "nameserver"]
    c = r.config
    assert c.ip4 is None and c.ip6 == Ip6Static(V6("2001:db8::1"), 64, V6("fe80::1"))
    assert c.dhcp == DhcpSpec() and c.bridge == "linux" and c.bootif is None
    assert c.nameservers == (V4("1.1.1.1"), V4("9.9.9.9"))
    assert c.ifnames == (("lan0", "52:54:00:12:34:56"),)
    assert c.firewall == FirewallSpec("ssh", (P(2222, 2222),))


def test_a_bad_later_occurrence_is_dropped_alone() -> None:
    r = cmdline.parse("mosdhcp_timeout=20 mosdhcp_timeout=zero mosbridge=ovs mosbridge=\udcff")
    assert [e.token for e in r.errors] == ["zero", "\udcff"]
    assert r.config.dhcp.timeout == 20.0 and r.config.bridge == "ovs"


def test_quoted_value_and_init_args_ignored() -> None:
    r = ok('mosbridge="ovs" -- mosbridge=linux')
    assert r.config.bridge == "ovs"


# --- reporting -------------------------------------------------------------------------


def test_format_and_log(caplog: pytest.LogCaptureFixture) -> None:
    r = cmdline.parse("mosbridge=vpp mosip4=10.0.0.5,10.0.0.1,24 ip=10.0.0.2::10.0.0.1:24::e:none")
    assert cmdline.format_errors(r.errors) == (
        "mosbridge: bad value 'vpp', expected ovs|linux|auto",
    )
    logger = logging.getLogger("test.cmdline")
    with caplog.at_level(logging.INFO, logger="test.cmdline"):
        cmdline.log_result(r, logger)
    levels = [(rec.levelno, rec.getMessage()) for rec in caplog.records]
    assert (
        logging.INFO,
        "cmdline: mosip4 given: ignoring ip=10.0.0.2::10.0.0.1:24::e:none for IPv4",
    ) in levels
    assert (
        logging.WARNING,
        "cmdline: mosbridge: bad value 'vpp', expected ovs|linux|auto",
    ) in levels
