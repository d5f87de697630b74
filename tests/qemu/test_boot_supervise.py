"""Nothing mosnet started stays dead, in the real root (issue 13 §6-7): one OVS boot.

DHCP mode on Open vSwitch (``mosbridge=ovs``) behind the MAC-filtering
provider of test_boot_hetzner, dnsmasq with T1 12 s, ``panic=1``. In the
real root (busybox as PID 1, knowing nothing of mosnet) the test root's
``mostest.supervise`` SIGKILLs ``@mosnet-daemon``, then ``ovs-vswitchd``,
then ``ovsdb-server``. Checked:

* each is replaced within seconds, the daemon by ``@mosnet-watch``, which
  followed PID 1 into the real root; the OVS daemons run from the copy in
  /run/mosnet/ovs (the initramfs is gone) with the same command line;
* the new daemon took the lease over: dnsmasq ACKs a renewal of the same
  address after the kill and never saw a second DISCOVER; the address is
  still on ``mos``;
* MAC NAT works again: the container (own MAC) pings the gateway through
  the filter, with no frame from a foreign MAC dropped; the base flows are back.

The Linux-bridge daemon's take-over is covered in tests/netns
(test_daemon_takeover.py) with a real dnsmasq; one boot is enough here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, OUT, Vm
from tests.qemu import provider
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec

CT4 = ".60"


def _gateway(tmp_path: Path) -> Gateway:
    gw = Gateway(
        name=f"mosqs-{os.getpid()}",
        workdir=tmp_path / "gw",
        dnsmasq_args=("--dhcp-option=option:T1,12", "--dhcp-option=option:T2,20"),
    )
    gw.start()
    provider.filter_macs(gw, GUEST_MAC)
    return gw


def test_killed_daemon_and_ovs_daemons_come_back_in_the_real_root(
    images: dict[str, Path], tmp_path: Path
) -> None:
    initrd = OUT / "mosnet-initramfs-ovs.img"
    if not initrd.exists():
        pytest.fail(f"{initrd} missing: run ./build.sh first")
    gw = _gateway(tmp_path)
    ct = f"{gw.net}{CT4}/24,{gw.address}"
    cmdline = f"root=/dev/vda rw panic=1 mosbridge=ovs mostest.container={ct} "
    cmdline += "mostest.handshake mostest.supervise"
    spec = boot_spec({**images, "initrd": initrd}, cmdline, net="tap:tap0", netns=gw.name)
    try:
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: host turn: supervise: kills next", BOOT_TIMEOUT)
            mark = len(gw.dnsmasq_log.read_text())
            vm.send("go\n")
            vm.wait_for(r"^ROOT: host turn: supervise: after the kills", 240)
            after = gw.dnsmasq_log.read_text()[mark:]
            drops = provider.drops(gw)
            vm.send("go\n")
            vm.wait_for(r"^ROOT: done", 60)
            console = vm.text()
    finally:
        gw.stop()
    leased = re.findall(rf"DHCPACK\(br0\) ({re.escape(gw.net)}\.\d+) {GUEST_MAC}", console + after)
    assert leased, after
    addr = leased[-1]
    # before the kills: everything mosnet runs is in the real root, OVS from /run
    assert f"ROOT: container ping {gw.address} (before the kills) ok" in console
    assert "ROOT: daemon in the real root yes" in console
    assert "ROOT: watch in the real root yes" in console
    assert "ROOT: ovs-vswitchd exe /run/mosnet/ovs/ld.so" in console
    for what in ("daemon", "ovs-vswitchd", "ovsdb-server"):
        found = re.search(rf"ROOT: {what} (\d+) replaced by (\d+) after (\d+)x0.5 s", console)
        # back within the guest's 60 s wait; how fast is a benchmark's question
        assert found, (what, console[-4000:])
    # the lease was taken over, not asked for anew, and renewed
    assert re.search(rf"took over {re.escape(addr)} from {re.escape(gw.address)}", console)
    assert f"DHCPACK(br0) {addr} {GUEST_MAC}" in after, after
    assert "DHCPDISCOVER" not in after, after
    renewals = re.search(r"ROOT: renewals (\d+) -> (\d+)", console)
    assert renewals and int(renewals[2]) > int(renewals[1]), console[-4000:]
    assert f"ROOT: mos after the kills: {addr}/24" in console
    # MAC NAT and the switch are back
    assert "ROOT: base flows after the kills 7" in console
    assert f"ROOT: container ping {gw.address} (after the kills) ok" in console
    assert "ROOT: fail_mode after the kills secure" in console
    assert drops == {"foreign source MAC": 0, "unicast to a foreign MAC": 0}, drops
    restarts = re.findall(r'"restarts": \{([^}]*)\}', console)  # the last state.json
    assert restarts, console[-4000:]
    for name in ("@mosnet-daemon", "@ovsdb-server", "@ovs-vswitchd"):
        assert f'"{name}": 1' in restarts[-1], restarts[-1]
    assert "Kernel panic" not in console
