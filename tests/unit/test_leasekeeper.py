"""The lease sequence exists once: the boot binds with the daemon's LeaseKeeper.

The kernel-facing steps (lease actions, gratuitous ARP) are recorded by
fakes; the files (lease record, state.json, resolv.conf) are real.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, cast

import pytest

from mosnet.base import netif
from mosnet.daemon import leasekeeper
from mosnet.daemon.leasekeeper import LeaseKeeper
from mosnet.dhcp4 import publish
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.lease import Lease
from mosnet.l2 import announce
from mosnet.netphase import dhcpmode
from mosnet.state.resolvconf import DnsInfo, ResolvConf

NOW = 500.0
LEASE = Lease(
    IPv4Address("10.0.0.5"), 24, IPv4Address("10.0.0.1"), 3600.0, 1800.0, 3150.0, 400.0,
    routers=(IPv4Address("10.0.0.1"),), dns=(IPv4Address("10.0.0.53"),),
    search=("lan.example",), hostname="node7",
    static_routes=((IPv4Network("192.168.7.0/24"), IPv4Address("10.0.0.7")),),
)  # fmt: skip


@dataclass
class FakeClient:
    ifname: str = "mos"
    lease: Lease | None = None

    def clock(self) -> float:
        return NOW

    def acquire(self, timeout: float) -> Lease | None:
        self.lease = LEASE
        return LEASE


def _client() -> Client:
    """The fake stands in for the real client: the keeper uses ifname, clock, lease."""
    return cast(Client, FakeClient())


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What would reach the kernel and the LAN, in order."""
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        leasekeeper, "apply_lease", lambda lease, dev, now: calls.append(("apply", (dev, now)))
    )
    monkeypatch.setattr(
        leasekeeper, "remove_lease", lambda lease, dev: calls.append(("remove", dev))
    )
    monkeypatch.setattr(netif, "interface_mac", lambda dev: b"\x02" * 6)
    monkeypatch.setattr(
        announce,
        "gratuitous_arp",
        lambda dev, mac, addr, count: calls.append(("garp", (dev, addr))),
    )
    monkeypatch.setattr(publish, "maybe_set_hostname", lambda n: calls.append(("hostname", n)))
    return calls


def test_bind_applies_announces_records_and_publishes(
    tmp_path: pathlib.Path, kernel: list[tuple[str, Any]]
) -> None:
    resolv = ResolvConf([str(tmp_path / "resolv.conf")], v6=DnsInfo(("fd00::53",)))
    keeper = LeaseKeeper(_client(), str(tmp_path), resolv)
    keeper.on_bind(LEASE)
    assert kernel == [
        ("apply", ("mos", NOW)),
        ("garp", ("mos", IPv4Address("10.0.0.5"))),
        ("hostname", "node7"),
    ]
    record = json.loads((tmp_path / "lease-mos.json").read_text())
    assert record["ifname"] == "mos" and record["address"] == "10.0.0.5"
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["lease"]["address"] == "10.0.0.5/24"
    text = (tmp_path / "resolv.conf").read_text()
    assert "nameserver 10.0.0.53" in text and "nameserver fd00::53" in text  # merged
    assert "search lan.example" in text


def test_renewal_neither_announces_nor_renames(
    tmp_path: pathlib.Path, kernel: list[tuple[str, Any]]
) -> None:
    keeper = LeaseKeeper(_client(), str(tmp_path))
    keeper.resolv = ResolvConf([str(tmp_path / "resolv.conf")])
    keeper.on_renew(LEASE)
    assert kernel == [("apply", ("mos", NOW))] and keeper.renewals == 1
    assert (tmp_path / "lease-mos.json").exists()


def test_expiry_removes_the_lease_and_its_record(
    tmp_path: pathlib.Path, kernel: list[tuple[str, Any]]
) -> None:
    keeper = LeaseKeeper(_client(), str(tmp_path))
    keeper.resolv = ResolvConf([str(tmp_path / "resolv.conf")])
    keeper.on_bind(LEASE)
    keeper.on_expire(LEASE)
    assert kernel[-1] == ("remove", "mos")
    assert not (tmp_path / "lease-mos.json").exists()
    assert "lease" not in json.loads((tmp_path / "state.json").read_text())


def test_the_boot_binds_through_the_keeper(
    tmp_path: pathlib.Path, kernel: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    configs: list[ClientConfig] = []

    def make(port: str, config: ClientConfig) -> FakeClient:
        configs.append(config)
        return FakeClient(port)

    monkeypatch.setattr(dhcpmode, "Client", make)
    resolv = ResolvConf([str(tmp_path / "resolv.conf")])
    client, lease = dhcpmode.lease_on("mos", str(tmp_path), resolv, "web7")
    assert lease == LEASE and client is not None
    assert [c.machine.hostname for c in configs] == ["web7"]  # ip=<...>:web7: sent in option 12
    assert [what for what, _ in kernel] == ["apply", "garp", "hostname"]
    assert resolv.v4.servers == ("10.0.0.53",) and (tmp_path / "lease-mos.json").exists()
