"""Kernel command line → NetConfig: every form, every error, and never a crash."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address as V4
from ipaddress import IPv6Address as V6

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.config import cmdline
from mosnet.config.model import (
    DhcpSpec,
    FirewallSpec,
    Ip4Static,
    Ip6Static,
    NatSpec,
    NetConfig,
    PortForward,
    PortRange,
)

P = PortRange


def ok(text: str) -> cmdline.ParseResult:
    result = cmdline.parse(text)
    assert result.errors == (), cmdline.format_errors(result.errors)
    return result


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
        NetConfig(ip4=Ip4Static(V4("10.0.0.2"), V4("10.0.0.1"), 24, "eth0", "ip")),
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
    ("ip=off", "ip=off: ignored, mosnet always brings the network up"),
    ("ip=eth0:dhcp:9000", "ip=eth0:dhcp:9000: MTU 9000 not supported yet, ignored"),
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


# --- properties: parse never raises ----------------------------------------------------

KEYS = sorted(cmdline.HANDLERS) + ["mosfoo", "root", "quiet"]
ATOMS = [
    "",
    ",",
    ":",
    "/",
    "-",
    "[",
    "]",
    "=",
    '"',
    "tcp:",
    "udp:",
    "sctp:",
    "dhcp",
    "none",
    "snat",
    "eth0",
    "01-",
    "10.0.0.1",
    "255.255.255.0",
    "255.0.255.0",
    "fe80::1",
    "[2001:db8::1]",
    "2001:db8::1/64",
    "22",
    "0",
    "65536",
    "8000-8100",
    "9-3",
    "aa:bb:cc:dd:ee:ff",
    "52",
    "nan",
    "1e9",
    "²",
    "\x00",
    "é",
    "..",
    "/24",
    "%eth0",
    "1_0",
    " ",
]
values = st.lists(st.one_of(st.sampled_from(ATOMS), st.text(max_size=6)), max_size=12).map("".join)
params = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), values)), max_size=8)


def _check(result: cmdline.ParseResult) -> None:
    assert isinstance(result.config, NetConfig)
    for err in result.errors:
        assert "internal error" not in err.expected, str(err)
        assert err.param and err.expected
    cmdline.format_errors(result.errors)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    _check(cmdline.parse(text))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params)
def test_structured_junk_never_raises(items: list[tuple[str, str | None]]) -> None:
    text = " ".join(k if v is None else f"{k}={v}" for k, v in items)
    _check(cmdline.parse(text))


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
