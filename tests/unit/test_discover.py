"""Which links count as NICs: physical Ethernet only, unless named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mosnet.uplink import discover


class FakeLink(dict[str, Any]):
    def __init__(self, index: int, name: str, mac: str, kind: str = "", ifi_type: int = 1) -> None:
        super().__init__(index=index, ifi_type=ifi_type)
        self.attrs = {"IFLA_IFNAME": name, "IFLA_ADDRESS": mac}
        self.kind = kind

    def get_attr(self, key: str) -> Any:
        if key == "IFLA_LINKINFO":
            return FakeInfo(self.kind) if self.kind else None
        return self.attrs.get(key)


class FakeInfo:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def get_attr(self, key: str) -> str:
        return self.kind


class FakeIpr:
    def __init__(self, links: list[FakeLink]) -> None:
        self.links = links

    def get_links(self) -> list[FakeLink]:
        return self.links


def _sysfs(tmp_path: Path) -> str:
    """eth0: virtio NIC below a PCI function; wlan0: wireless; veth0: no device."""
    devices = tmp_path / "devices/pci0000:00/0000:00:03.0/virtio2"
    (tmp_path / "bus/drivers/virtio_net").mkdir(parents=True)
    devices.mkdir(parents=True)
    (devices / "driver").symlink_to(tmp_path / "bus/drivers/virtio_net")
    for name in ("eth0", "wlan0", "veth0", "br0"):
        (tmp_path / "class/net" / name).mkdir(parents=True)
    for name in ("eth0", "wlan0"):
        (tmp_path / "class/net" / name / "device").symlink_to(devices)
    (tmp_path / "class/net/wlan0/wireless").mkdir()
    (tmp_path / "class/net/eth0/carrier").write_text("1\n")
    return str(tmp_path)


LINKS = [
    FakeLink(1, "lo", "00:00:00:00:00:00", ifi_type=772),
    FakeLink(2, "eth0", "52:54:00:00:00:01"),
    FakeLink(3, "wlan0", "52:54:00:00:00:02"),
    FakeLink(4, "veth0", "52:54:00:00:00:03", kind="veth"),
    FakeLink(5, "br0", "52:54:00:00:00:04", kind="bridge"),
]


def test_only_physical_ethernet_nics_with_driver_and_pci_path(tmp_path: Path) -> None:
    nics = discover.list_nics(FakeIpr(LINKS), sysfs=_sysfs(tmp_path))
    assert [n.name for n in nics] == ["eth0"]
    assert nics[0].driver == "virtio_net"
    assert nics[0].bus_path == "0000:00:03.0"
    assert nics[0].mac == "52:54:00:00:00:01"


def test_virtual_links_count_when_named(tmp_path: Path) -> None:
    nics = discover.list_nics(FakeIpr(LINKS), sysfs=_sysfs(tmp_path), include=["veth0"])
    assert [(n.name, n.kind) for n in nics] == [("eth0", ""), ("veth0", "veth")]


def test_wait_for_carrier_is_bounded(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path)
    nics = discover.list_nics(FakeIpr(LINKS), sysfs=sysfs, include=["veth0"])
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    ready = discover.wait_for_carrier(nics, 2.0, sysfs=sysfs, clock=lambda: now[0], sleep=sleep)
    assert [n.name for n in ready] == ["eth0"]
    ready_all = discover.wait_for_carrier(
        nics, 2.0, sysfs=sysfs, clock=lambda: now[0], sleep=sleep, want_all=True
    )
    assert [n.name for n in ready_all] == ["eth0"]  # veth0 never got carrier: timed out
    assert now[0] >= 2.0
