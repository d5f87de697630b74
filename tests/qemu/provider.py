"""The MAC-filtering provider on a QEMU gateway (Hetzner's rule), shared by the boot tests.

``filter_macs`` drops every frame from the guest whose source MAC is not
the guest NIC's and every unicast towards another MAC; ``drops`` reads its
counters; ``neighbours`` and ``ping`` look from the provider's side.
"""

from __future__ import annotations

import json
import re
import subprocess

from qemu.topology import Gateway

FILTER = """
table bridge macfilter {
  chain pre {
    type filter hook prerouting priority -200; policy accept;
    iifname "tap0" ether saddr %(mac)s counter accept
    iifname "tap0" counter drop comment "foreign source MAC"
  }
  chain post {
    type filter hook postrouting priority -200; policy accept;
    oifname "tap0" ether daddr != %(mac)s ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 \\
      counter drop comment "unicast to a foreign MAC"
  }
}
"""


def filter_macs(gw: Gateway, mac: str) -> None:
    """Load the filter in the gateway's namespace: only ``mac`` passes tap0."""
    subprocess.run(
        ["ip", "netns", "exec", gw.name, "nft", "-f", "-"],
        input=FILTER % {"mac": mac}, text=True, check=True,
    )  # fmt: skip


def drops(gw: Gateway) -> dict[str, int]:
    """The filter's drop counters by comment."""
    text = gw.run("nft", "list", "table", "bridge", "macfilter").stdout
    found = re.findall(r'counter packets (\d+) bytes \d+ drop comment "([^"]+)"', text)
    return {name: int(n) for n, name in found}


def neighbours(gw: Gateway) -> dict[str, str]:
    """The gateway's neighbours on br0 but its own addresses: the kernel lists its
    own link-local (as a router) once its multicast RAs loop back to it."""
    rows = json.loads(gw.run("ip", "-j", "neigh", "show", "dev", "br0").stdout or "[]")
    own = gw.run("ip", "-o", "addr", "show", "dev", "br0").stdout
    mine = set(re.findall(r"inet6? ([0-9a-f.:]+)/", own))
    return {r["dst"]: r.get("lladdr", "") for r in rows if r["dst"] not in mine}


def ping(gw: Gateway, addr: str) -> bool:
    """From the gateway: does ``addr`` answer (two tries of two pings)?"""
    argv = ("/bin/busybox", "ping", "-6" if ":" in addr else "-4", "-c", "2", "-W", "3", addr)
    return any(gw.run(*argv, timeout=20).returncode == 0 for _ in range(2))
