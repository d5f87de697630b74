"""MAC NAT on the Linux bridge behind a provider that filters MACs (the Hetzner case).

The tap-side namespace drops every frame from the guest whose source MAC is
not the guest NIC's, and every unicast towards another MAC. A container-like
namespace in the real root, with a MAC of its own on br-mosnet, must reach
the gateway with MAC NAT and must not once MAC NAT is removed.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, Vm
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec

CONTAINER_MAC = "02:00:00:aa:bb:01"
FILTER = """
table bridge macfilter {
  set seen { type ether_addr . ether_type; flags dynamic; }
  chain pre {
    type filter hook prerouting priority -200; policy accept;
    iifname "tap0" ether saddr %(mac)s counter accept
    iifname "tap0" update @seen { ether saddr . ether type }
    iifname "tap0" counter drop comment "foreign source MAC"
  }
  chain post {
    type filter hook postrouting priority -200; policy accept;
    oifname "tap0" ether daddr != %(mac)s ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 \
      counter drop comment "unicast to a foreign MAC"
  }
}
"""


def _drops(gw: Gateway) -> dict[str, int]:
    text = gw.run("nft", "list", "table", "bridge", "macfilter").stdout
    found = re.findall(r'counter packets (\d+) bytes \d+ drop comment "([^"]+)"', text)
    return {name: int(n) for n, name in found}


def test_container_behind_mac_filter_needs_mac_nat(images: dict[str, Path], tmp_path: Path) -> None:
    gw = Gateway(name=f"mosqm-{os.getpid()}", workdir=tmp_path / "gw")
    gw.start(dhcp=False)
    host, container = f"{gw.net}.52", f"{gw.net}.60"
    subprocess.run(
        ["ip", "netns", "exec", gw.name, "nft", "-f", "-"],
        input=FILTER % {"mac": GUEST_MAC}, text=True, check=True,
    )  # fmt: skip
    append = (
        f"root=/dev/vda rw mosip4={host},{gw.address},255.255.255.0 "
        f"mostest.container={container}/24,{gw.address}"
    )
    try:
        with Vm(boot_spec(images, append, net="tap:tap0", netns=gw.name), tmp_path / "c.log") as vm:
            vm.wait_for(r"^ROOT: container phase macnat done", BOOT_TIMEOUT)
            with_nat = _drops(gw)
            seen = gw.run("nft", "list", "set", "bridge", "macfilter", "seen").stdout
            reach_back = gw.run("/bin/busybox", "ping", "-c", "2", "-W", "3", container)
            neigh = gw.run("ip", "neigh", "show", container).stdout
            vm.wait_for(r"^ROOT: done", 90)
            without_nat = _drops(gw)
            console = vm.text()
    finally:
        gw.stop()
    assert "macnat: applied bridge mosnet-macnat on uplink eth0" in console
    assert f"ROOT: container ping {gw.address} (MAC NAT) ok" in console
    assert with_nat == {"foreign source MAC": 0, "unicast to a foreign MAC": 0}, (with_nat, seen)
    assert reach_back.returncode == 0, "the gateway cannot reach the container"
    assert GUEST_MAC in neigh and CONTAINER_MAC not in neigh, neigh
    # Negative control: the same container without MAC NAT is filtered out.
    assert "ROOT: MAC NAT removed" in console
    assert f"ROOT: container ping {gw.address} (no MAC NAT) FAILED" in console
    assert without_nat["foreign source MAC"] > 0, without_nat
