"""Find the physical NICs, report what they are, and bring them up.

Netlink (pyroute2) gives names, MACs, link kinds and carrier; sysfs adds the
driver and the bus path a user recognises from lspci. Virtual links (bridges,
veths, tunnels, bonds), loopback and wireless are left out unless named.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mosnet.base import log, netif

_log = log.get("discover")

ARPHRD_ETHER = 1
_PCI_ADDR = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
IFF_UP = 0x1


@dataclass(frozen=True)
class Choice:
    """The uplink and why it was picked (logged, and kept in state.json)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Nic:
    name: str
    index: int
    mac: str
    driver: str
    bus_path: str  # e.g. 0000:00:03.0, or "" for virtual links that were named
    kind: str  # "" for a physical NIC, else the netlink link kind (veth, ...)
    mtu: int = 1500

    def describe(self) -> str:
        where = f" at {self.bus_path}" if self.bus_path else ""
        what = self.driver or self.kind or "unknown driver"
        return f"{self.name} {self.mac} ({what}{where})"


def link_kind(msg: Any) -> str:
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None:
        return ""
    kind = info.get_attr("IFLA_INFO_KIND")
    return str(kind) if kind else ""


def _sysfs_device(sysfs: str, name: str) -> tuple[str, str]:
    """(driver, bus path) from /sys/class/net/<name>/device, or ("", "")."""
    device = os.path.join(sysfs, "class/net", name, "device")
    if not os.path.exists(device):
        return "", ""
    real = os.path.realpath(device)
    # virtio NICs sit below their PCI function; report the PCI address users know.
    pci = [c for c in real.split("/") if _PCI_ADDR.fullmatch(c)]
    bus_path = pci[-1] if pci else os.path.basename(real)
    driver_link = os.path.join(device, "driver")
    driver = os.path.basename(os.path.realpath(driver_link)) if os.path.exists(driver_link) else ""
    return driver, bus_path


def _is_wireless(sysfs: str, name: str) -> bool:
    base = os.path.join(sysfs, "class/net", name)
    return os.path.exists(os.path.join(base, "wireless")) or os.path.exists(
        os.path.join(base, "phy80211")
    )


def _nic_from_msg(msg: Any, sysfs: str, named: frozenset[str]) -> Nic | None:
    name = str(msg.get_attr("IFLA_IFNAME"))
    kind = link_kind(msg)
    driver, bus_path = _sysfs_device(sysfs, name)
    if name not in named:
        if msg["ifi_type"] != ARPHRD_ETHER or kind or not bus_path:
            return None
        if _is_wireless(sysfs, name):
            return None
    mac = str(msg.get_attr("IFLA_ADDRESS") or "")
    mtu = int(msg.get_attr("IFLA_MTU") or 1500)
    return Nic(name, int(msg["index"]), mac, driver, bus_path, kind, mtu)


def list_nics(ipr: Any, *, sysfs: str = "/sys", include: Iterable[str] = ()) -> tuple[Nic, ...]:
    """Physical Ethernet NICs (plus any link named in ``include``), sorted by name."""
    named = frozenset(include)
    nics = [n for m in ipr.get_links() if (n := _nic_from_msg(m, sysfs, named)) is not None]
    nics.sort(key=lambda n: n.name)
    for nic in nics:
        _log.info("nic %s", nic.describe())
    return tuple(nics)


def bring_up(ipr: Any, nics: Iterable[Nic]) -> None:
    """Set every NIC administratively up; a failing one is logged and skipped."""
    for nic in nics:
        try:
            ipr.link("set", index=nic.index, state="up")
        except Exception as exc:  # pyroute2 raises NetlinkError and OSError
            _log.warning("cannot bring %s up: %s", nic.name, exc)


def has_carrier(name: str, sysfs: str = "/sys") -> bool:
    return netif.carrier(name, sysfs) is True


def wait_for_carrier(
    nics: Iterable[Nic],
    timeout: float,
    *,
    sysfs: str = "/sys",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    want_all: bool = False,
) -> tuple[Nic, ...]:
    """NICs with carrier, in the given order, once one (or all) have it or at timeout."""
    pending = tuple(nics)
    deadline = clock() + timeout
    while True:
        ready = tuple(n for n in pending if has_carrier(n.name, sysfs))
        done = len(ready) == len(pending) if want_all else bool(ready)
        if done or clock() >= deadline:
            return ready
        sleep(0.05)
