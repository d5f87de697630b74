"""Bond and VLAN uplinks of br-mosnet against a real switch (issue 16).

The host kernel has neither 8021q nor bonding, so the far side is a second
QEMU guest (qemu/switchvm.py) booting the same Debian kernel: it tags, bonds
with LACP or bridges, and is the gateway 10.77.0.1 with dnsmasq. The guests
are wired by QEMU UDP socket netdevs, one per cable. Each case boots mosnet
with dracut's ``bond=``/``vlan=`` and checks, in the real root and from the
switch, that the bond or VLAN is br-mosnet's port and carries the lease or
the static address:

* VLAN 100, DHCP, Linux bridge, uplink not named: the lease comes over
  the tagged link; negative control: without ``vlan=`` mosnet's untagged
  DHCP reaches the switch, which drops it, and no lease is had;
* VLAN 100, static via ``ip=…:myhost:eth0.100:none:1400``, Open vSwitch, IPv4
  and IPv6: the host name in state.json, MTU 1400 on the internal port;
* active-backup bond, DHCP via ``ip=bond0:dhcp``, Linux bridge: the active
  NIC's cable is pulled (QMP ``set_link``) after switch_root; the backup
  takes over, the daemon's announcement moves the host to the backup port
  in the switch's table, the gateway answers and the lease still renews;
* 802.3ad bond, DHCP, Open vSwitch: LACP negotiated with the switch's bond;
* VLAN 100 on an 802.3ad bond, static ``mosip4=`` without a device, Linux:
  the gateway probe finds the VLAN; a container's traffic leaves with the
  bond's MAC (MAC NAT), as on the 802.3ad DHCP case.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from qemu import qmp
from qemu.switchvm import GW4, GW6, NET4, Bonding, Switch, bonding, cables
from qemu.vm import OUT, Vm
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec

GUEST_MACS = ("52:54:00:12:34:56", "52:54:00:12:34:57")
SWITCH_MACS = ("52:54:00:77:00:01", "52:54:00:77:00:02")
# Two guests share the cores: mosnet's boot takes longer than alone.
TIMEOUT = BOOT_TIMEOUT + 120
# dnsmasq's shortest lease is 2 min: T1/T2 make the daemon renew meanwhile.
RENEW = " --dhcp-option=option:T1,10 --dhcp-option=option:T2,16"
LACP = "mode=802.3ad,miimon=100,lacp_rate=fast,xmit_hash_policy=layer3+4"
STATIC4, STATIC6 = f"{NET4}.10", "fd00:77::10"


@dataclass(frozen=True)
class Case:
    backend: str
    mode: str  # "dhcp" or "static"
    uplink: str  # the bond or VLAN mosnet must take
    nics: int
    switch: str  # qemu/switch-init.sh helpers
    append: str  # mosnet's part of the guest's command line

    @property
    def port(self) -> str:
        return "mos" if self.mode == "dhcp" else "public"

    @property
    def gw_iface(self) -> str:
        """The switch interface with the gateway address and dnsmasq."""
        found = re.search(r"^gateway (\S+)", self.switch, re.M)
        assert found, self.switch
        return found.group(1)


STATIC_ARGS = f"mosip6={STATIC6}/64,{GW6} mostest.ping={GW4} mostest.ping={GW6}"
# A container with a MAC of its own on br-mosnet: MAC NAT must show the switch only the
# uplink's MAC (the bond's: its first slave's).
CT4, CT6, CT_MAC = f"{NET4}.60", "fd00:77::60", "02:00:00:aa:bb:01"
CONTAINER = f" mostest.container={CT4}/24,{GW4},{CT6}/64,{GW6} mostest.ctbrief"
CASES = {
    "vlan-dhcp-linux": Case(
        "linux", "dhcp", "eth0.100", 1, "vlan eth0 100\ngateway eth0.100\n",
        "vlan=eth0.100:eth0",
    ),
    "vlan-static-ovs": Case(
        "ovs", "static", "eth0.100", 1, "vlan eth0 100\ngateway eth0.100\n",
        f"vlan=eth0.100:eth0 ip={STATIC4}::{GW4}:255.255.255.0:myhost:eth0.100:none:1400 "
        + STATIC_ARGS,
    ),
    "lacp-dhcp-ovs": Case(
        "ovs", "dhcp", "bond0", 2, "bond bond0 802.3ad eth0 eth1\ngateway bond0\n",
        f"bond=bond0:eth0,eth1:{LACP} mostest.ping={GW4}" + CONTAINER,
    ),
    "lacp-vlan-static-linux": Case(
        "linux", "static", "bond0.100", 2,
        "bond bond0 802.3ad eth0 eth1\nvlan bond0 100\ngateway bond0.100\n",
        f"bond=bond0:eth0,eth1:{LACP} vlan=bond0.100:bond0 "
        f"mosip4={STATIC4},{GW4},255.255.255.0 " + STATIC_ARGS + CONTAINER,
    ),
}  # fmt: skip
UNTAGGED = Case(
    "linux", "dhcp", "eth0", 1, "vlan eth0 100\ngateway eth0.100\n", "mosdhcp_timeout=3"
)
BACKUP = Case(
    "linux", "dhcp", "bond0", 2, f"bridge br0 eth0 eth1\ngateway br0{RENEW}\n",
    "bond=bond0:eth0,eth1:mode=active-backup,miimon=100 ip=bond0:dhcp "
    f"mostest.pingafter={GW4} mostest.wait=30",
)  # fmt: skip


@dataclass
class Rig:
    switch: Switch
    guest: Vm
    qmp: Path


@contextmanager
def _rig(images: dict[str, Path], tmp_path: Path, case: Case) -> Iterator[Rig]:
    """The switch and the guest mosnet boots in, one cable per guest NIC."""
    initrd = OUT / "mosnet-initramfs-ovs.img" if case.backend == "ovs" else images["initrd"]
    if not initrd.exists():
        pytest.fail(f"{initrd} missing: run ./build.sh first")
    links = cables(case.nics)
    switch_nics: list[str] = []
    guest_nics: list[str] = []
    for i, cable in enumerate(links):
        switch_nics += cable.end(0, f"s{i}", SWITCH_MACS[i])
        guest_nics += cable.end(1, f"g{i}", GUEST_MACS[i])
    # A unix socket path has at most 107 bytes: pytest's tmp_path may be longer.
    sock = Path(tempfile.mkdtemp(prefix="mosqmp-")) / "qmp.sock"
    append = f"root=/dev/vda rw mosbridge={case.backend} mostest.uplink {case.append}"
    spec = boot_spec({**images, "initrd": initrd}, append, net="none",
                     extra=(*guest_nics, *qmp.qmp_args(sock)))  # fmt: skip
    try:
        with Switch(tmp_path, case.switch, switch_nics) as switch:
            switch.wait_ready()
            with Vm(spec, tmp_path / "console.log") as guest:
                yield Rig(switch, guest, sock)
    finally:
        shutil.rmtree(sock.parent, ignore_errors=True)


def _root_block(console: str, title: str) -> list[str]:
    """Each ``ROOT: --- <title>`` block of the console, prefixes removed."""
    blocks = re.findall(rf"^ROOT: --- {re.escape(title)}\r?\n((?:ROOT:   .*\n)*)", console, re.M)
    return [re.sub(r"^ROOT:   ", "", b, flags=re.M) for b in blocks]


def _links_log(console: str) -> str:
    """mosnet's link actions and plan notes: why a bond or VLAN is not what was asked."""
    lines = re.findall(r"mosnet: ((?:links: |plan:   - |nic )[^\r\n]*)", console)
    return "\n".join(lines)


def _guest_bonds(console: str) -> list[Bonding]:
    return [bonding(b) for b in _root_block(console, "/proc/net/bonding/bond0")]


def _state(console: str) -> dict[str, object]:
    line = re.search(r"^ROOT: state\.json (\{.*\})\s*$", console, re.M)
    assert line, "no /run/mosnet/state.json in the real root"
    network: dict[str, object] = json.loads(line.group(1))["network"]
    return network


def _check_uplink(console: str, case: Case) -> str:
    """The bond or VLAN is br-mosnet's port and the host address is on mos/public."""
    assert "ROOT: real init running as pid 1" in console
    found = re.findall(r"^ROOT: br-mosnet ports: (.*?)\r?$", console, re.M)
    ports = set(found[0].split()) if found else set()
    # OVS: the internal port itself; Linux: the bridge end of its veth
    assert case.uplink in ports and ports & {case.port, f"{case.port}-br"}, found
    addr = re.search(rf"ROOT:\s+inet ({re.escape(NET4)}\.\d+)/24 .* {case.port}\r?$", console, re.M)
    assert addr, f"no {NET4}.x/24 on {case.port} in the real root"
    state = _state(console)
    assert (state["mode"], state["nic"], state["backend"]) == (case.mode, case.uplink, case.backend)
    assert re.search(rf"ROOT:\s+default via {re.escape(GW4)} dev {case.port}", console)
    assert "Kernel panic" not in console
    return addr.group(1)


def _acks(switch: Switch, iface: str) -> list[str]:
    """dnsmasq's DHCPACK lines on the switch: ``<address> <mac>``."""
    log = switch.run(f"grep 'DHCPACK({iface})' /tmp/dnsmasq.log")
    return re.findall(rf"DHCPACK\({re.escape(iface)}\) (\S+ \S+)", log)


def _check_lacp(switch: Switch, console: str) -> None:
    """Both sides aggregate both ports, each with the other as partner."""
    mine = bonding(switch.run("cat /proc/net/bonding/bond0"))
    assert len(mine.slaves) == 2 and mine.lacp_in_use(), mine
    assert mine.partners == {GUEST_MACS[0]}, mine.partners
    theirs = _guest_bonds(console)[-1]
    assert theirs.fields["Bonding Mode"] == "IEEE 802.3ad Dynamic link aggregation"
    assert len(theirs.slaves) == 2 and theirs.lacp_in_use(), theirs
    assert theirs.partners == {SWITCH_MACS[0]}, theirs.partners


def _check_static(switch: Switch, console: str, case: Case) -> None:
    assert _check_uplink(console, case) == STATIC4
    for target in (GW4, GW6):
        assert f"ROOT: ping {target} ok" in console, target
    # The switch reached the host on the tagged interface, at the uplink's MAC.
    neigh = switch.run(f"ip neigh show {STATIC4} dev {case.gw_iface}")
    assert GUEST_MACS[0] in neigh, neigh
    state = _state(console)
    if ":myhost:" in case.append:  # ip=...:<hostname>:<iface>:none:<mtu>
        assert state["hostname"] == "myhost", state
        assert re.search(r"^ROOT:   \d+: public: <[^>]*> mtu 1400 ", console, re.M)
    if ",bond0.100" not in case.append and "eth0.100:none" not in case.append:
        assert "answered ARP" in str(state["nic_reason"]), state  # the probe found it


@pytest.mark.parametrize("name", sorted(CASES))
def test_uplink(images: dict[str, Path], tmp_path: Path, name: str) -> None:
    case = CASES[name]
    with _rig(images, tmp_path, case) as rig:
        rig.guest.wait_for(r"^ROOT: done", TIMEOUT)
        console = rig.guest.text()
        if case.mode == "dhcp":
            address = _check_uplink(console, case)
            assert f"{address} {GUEST_MACS[0]}" in _acks(rig.switch, case.gw_iface)
        else:
            _check_static(rig.switch, console, case)
        if case.uplink.startswith("bond"):
            _check_lacp(rig.switch, console)
        if "mostest.container" in case.append:
            _check_container(rig.switch, console, case)


def _check_container(switch: Switch, console: str, case: Case) -> None:
    """The container reaches the gateway both families; the switch saw only the bond MAC."""
    for target in (GW4, GW6):
        assert f"ROOT: container ping {target} (MAC NAT) ok" in console, target
    for addr in (CT4, CT6):
        neigh = switch.run(f"ip neigh show {addr} dev {case.gw_iface}")
        assert GUEST_MACS[0] in neigh and CT_MAC not in neigh, (addr, neigh)
    seen = switch.run(f"ip neigh show dev {case.gw_iface}")
    assert CT_MAC not in seen and GUEST_MACS[1] not in seen, seen


def test_active_backup_survives_a_pulled_cable(images: dict[str, Path], tmp_path: Path) -> None:
    with _rig(images, tmp_path, BACKUP) as rig:
        rig.guest.wait_for(r"^ROOT: host turn: pingafter", TIMEOUT)
        bonds = _guest_bonds(rig.guest.text())
        assert bonds, _links_log(rig.guest.text())
        before = bonds[-1]
        mode = before.fields.get("Bonding Mode")
        assert mode == "fault-tolerance (active-backup)", (mode, _links_log(rig.guest.text()))
        active = before.fields["Currently Active Slave"]
        acks_before = _acks(rig.switch, "br0")
        qmp.set_link(rig.qmp, f"g{active[-1]}", up=False)
        # The daemon tells the switch at once, before the host sends anything of its own.
        backup = f"eth{1 - int(active[-1])}"  # guest NIC i is cabled to switch NIC i
        fdb = _learned_on(rig.switch, GUEST_MACS[0], backup)
        rig.guest.send("go\n")
        rig.guest.wait_for(r"^ROOT: done", 240)
        console = rig.guest.text()
        acks_after = _acks(rig.switch, "br0")
    address = _check_uplink(console, BACKUP)
    assert {s["MII Status"] for s in before.slaves.values()} == {"up"}, before
    assert re.search(rf"^ROOT: pingafter {re.escape(GW4)} ok after \d+ tries", console, re.M)
    assert f"{GUEST_MACS[0]} dev {backup} " in fdb, fdb
    announced = rf"ROOT: log: .* bond0: bond0 failed over to {backup}: announcing the host again"
    assert re.search(announced, console), _links_log(console)
    after = _guest_bonds(console)[-1]
    assert after.slaves[active]["MII Status"] == "down", after
    assert after.fields["Currently Active Slave"] not in (active, "None"), after
    # The daemon renewed through the backup NIC: same address, new ACKs.
    assert acks_before and len(acks_after) > len(acks_before), (acks_before, acks_after)
    assert set(acks_after) == {f"{address} {GUEST_MACS[0]}"}, acks_after
    final = re.findall(rf"ROOT:\s+inet ({re.escape(NET4)}\.\d+)/24 .* mos\r?$", console, re.M)
    assert final[-1] == address, final


def _learned_on(switch: Switch, mac: str, port: str, within: float = 8.0) -> str:
    """The switch's forwarding entry for ``mac`` once it names ``port`` (or at the end)."""
    deadline = time.monotonic() + within
    while True:
        fdb = switch.run(f"/usr/sbin/bridge fdb show br br0 | grep {mac}")
        if f"{mac} dev {port} " in fdb or time.monotonic() > deadline:
            return fdb
        time.sleep(0.5)


def test_untagged_dhcp_gets_no_lease(images: dict[str, Path], tmp_path: Path) -> None:
    """The VLAN switch without ``vlan=``: the tag, not luck, carried the lease above."""
    with _rig(images, tmp_path, UNTAGGED) as rig:
        rig.guest.wait_for(r"^ROOT: done", TIMEOUT)
        console = rig.guest.text()
        untagged = rig.switch.run("cat /sys/class/net/untag-eth0/statistics/rx_packets")
        dhcp_log = rig.switch.run("grep DHCP /tmp/dnsmasq.log")
    assert "ROOT: real init running as pid 1" in console
    assert "mosnet: DHCP probe: DISCOVER on eth0" in console
    assert not re.search(rf"ROOT:\s+inet {re.escape(NET4)}\.", console), "a lease without the tag"
    # mosnet's DISCOVERs reached the switch untagged and were dropped there.
    assert int(untagged.split()[-1]) > 0, untagged
    assert "DHCPDISCOVER" not in dhcp_log, dhcp_log
