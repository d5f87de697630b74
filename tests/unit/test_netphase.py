"""One network phase, one outcome: the strategies' results completed the same way.

The strategies themselves run against real links in tests/netns
(test_static.py, test_dhcpmode.py); here they are replaced to check what the
phase adds: the proxy spec, the firewall (always, and last) and the timings.
"""

from __future__ import annotations

import dataclasses
import pathlib
from ipaddress import IPv4Address

import pytest

from mosnet.config.cmdline import parse
from mosnet.config.model import NetConfig
from mosnet.dhcp4.lease import Lease
from mosnet.netphase import dhcpmode, phase, static
from mosnet.netphase.outcome import Outcome, Uplink
from mosnet.nft import firewall
from mosnet.nft.firewall import FirewallResult
from mosnet.state.resolvconf import ResolvConf
from mosnet.topology.plan import Plan

MAC = "0c:c4:7a:10:00:02"
LEASE = Lease(
    IPv4Address("10.0.0.5"), 24, IPv4Address("10.0.0.1"), 3600.0, 1800.0, 3150.0, 0.0,
    routers=(IPv4Address("10.0.0.1"),),
)  # fmt: skip


def _outcome(mode: str, lease: Lease | None = None) -> Outcome:
    plan = Plan("static" if mode == "static" else "dhcp", "eno2", "linux")
    port = "public" if mode == "static" else "mos"
    return Outcome(mode, plan, ResolvConf([]), uplink=Uplink("eno2", MAC, "x"), port=port,
                   lease=lease)  # fmt: skip


@pytest.fixture
def fired(monkeypatch: pytest.MonkeyPatch) -> list[NetConfig]:
    calls: list[NetConfig] = []

    def fake_load(cfg: NetConfig) -> FirewallResult:
        calls.append(cfg)
        return FirewallResult(("inet mosnet-firewall",))

    monkeypatch.setattr(firewall, "load", fake_load)
    return calls


def test_static_outcome_has_proxy_and_firewall(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, fired: list[NetConfig]
) -> None:
    cfg = parse("mosip4=10.0.0.5,10.0.0.1,255.255.255.0 mosfirewall=ssh").config
    monkeypatch.setattr(static, "bring_up", lambda c, r, i: _outcome("static"))
    times: dict[str, float] = {}
    out = phase.bring_up(cfg, str(tmp_path), timings=times)
    assert list(times) == ["network", "firewall"]  # the firewall comes last
    assert fired == [cfg] and out.firewall is not None
    assert out.proxy is not None and out.proxy.ifname == "eno2"
    assert out.proxy.config.v4 == frozenset({IPv4Address("10.0.0.5")})
    assert out.proxy.config.gateways == frozenset({IPv4Address("10.0.0.1")})  # never answered


def test_dhcp_without_lease_has_no_proxy_but_the_firewall(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, fired: list[NetConfig]
) -> None:
    cfg = parse("mosfirewall=ssh").config
    monkeypatch.setattr(dhcpmode, "bring_up", lambda c, r, i: _outcome("dhcp"))
    out = phase.bring_up(cfg, str(tmp_path))
    assert out.proxy is None and out.firewall is not None and fired == [cfg]


def test_dhcp_lease_gives_the_proxy_its_address(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, fired: list[NetConfig]
) -> None:
    monkeypatch.setattr(dhcpmode, "bring_up", lambda c, r, i: _outcome("dhcp", LEASE))
    out = phase.bring_up(parse("").config, str(tmp_path))
    assert out.proxy is not None and out.proxy.config.v4 == frozenset({LEASE.address})
    assert out.firewall is None and fired == []  # neither parameter: nftables left alone


def test_outcome_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(_outcome("dhcp"), "port", "eth0")  # noqa: B010  # what a caller must not do
