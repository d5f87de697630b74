"""Self-check of the switch guest: two of them, LACP and a VLAN between them.

``python -m qemu.switchpair [workdir]`` (under flock /tmp/mosnet-qemu.lock)
boots guest A as the gateway (802.3ad bond, VLAN 100 on it, 10.77.0.1 and
dnsmasq) and guest B as a client with the same bond and VLAN, then checks
that LACP aggregated both ports with the other guest as partner, that untagged
frames from B reach no gateway, and that B gets a DHCP lease over the tagged
bond and pings the gateway.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from qemu.switchvm import GW4, Switch, bonding, cables

A_MACS = ("52:54:00:aa:00:01", "52:54:00:aa:00:02")
B_MACS = ("52:54:00:bb:00:01", "52:54:00:bb:00:02")
GATEWAY = "bond bond0 802.3ad eth0 eth1\nvlan bond0 100\ngateway bond0.100\n"
CLIENT = "bond bond0 802.3ad eth0 eth1\nvlan bond0 100\n"


def _lacp(sw: Switch, partner: str) -> bool:
    for _ in range(60):
        info = bonding(sw.run("cat /proc/net/bonding/bond0"))
        if len(info.slaves) == 2 and info.lacp_in_use() and info.partners == {partner}:
            return True
        time.sleep(1)
    print(sw.run("cat /proc/net/bonding/bond0"))
    return False


def main(workdir: Path) -> int:
    c0, c1 = cables(2)
    a_nics = (*c0.end(0, "a0", A_MACS[0]), *c1.end(0, "a1", A_MACS[1]))
    b_nics = (*c0.end(1, "b0", B_MACS[0]), *c1.end(1, "b1", B_MACS[1]))
    started = time.monotonic()
    with Switch(workdir, GATEWAY, a_nics, "a") as a, Switch(workdir, CLIENT, b_nics, "b") as b:
        print(a.wait_ready(), b.wait_ready(), sep="\n")
        print(f"both ready after {time.monotonic() - started:.0f} s")
        checks = {
            "A: LACP partner is B": _lacp(a, B_MACS[0]),
            "B: LACP partner is A": _lacp(b, A_MACS[0]),
        }
        # Untagged first: B on the gateway's subnet without the tag gets no answer.
        b.run("ip addr add 10.77.0.3/24 dev bond0")
        checks["B: untagged frames find no gateway"] = "100% packet loss" in b.run(
            f"ping -c 2 -W 1 {GW4}", 30
        )
        untagged = a.run("cat /sys/class/net/untag-bond0/statistics/rx_packets").split()
        checks["A: counted B's untagged frames"] = untagged[-1:] != ["0"] and bool(untagged)
        b.run("ip addr flush dev bond0")
        offer = b.run("udhcpc -i bond0.100 -n -q -t 5 -s /bin/true 2>&1", 60)
        checks["B: DHCP lease over the tagged bond"] = "obtained" in offer
        b.run("ip addr add 10.77.0.2/24 dev bond0.100")
        checks["B: ping the gateway on VLAN 100"] = " 0% packet loss" in b.run(
            f"ping -c 3 -W 2 {GW4}", 30
        )
        print(a.run("cat /tmp/dnsmasq.log; ip -d link show bond0.100"))
    for what, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="swpair-"))
    print(f"consoles in {where}")
    sys.exit(main(where))
