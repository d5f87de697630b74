"""The OVS lab shared by tests/netns/test_ovs.py: a provider namespace whose
bridge filter drops foreign MACs, a server namespace for the OVS daemons and
a container namespace (see that module's docstring for the map).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from mosnet.ovs import vswitch

REPO = pathlib.Path(__file__).resolve().parents[2]
UPLINK_MAC = "52:54:00:3c:00:01"
CT_MAC = "02:00:00:aa:bb:01"


def run(*argv: str, check: bool = True, stdin: str = "") -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv}: rc={proc.returncode} {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Lab:
    tag: str
    prefix: str
    run_dir: str
    provider: str = ""
    server: str = ""
    container: str = ""
    namespaces: list[str] = field(default_factory=list)

    def ns(self, ns: str, *argv: str, check: bool = True) -> str:
        return run("ip", "netns", "exec", ns, *argv, check=check)

    def ping(self, ns: str, dst: str) -> bool:
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, "/bin/busybox", "ping", "-c", "2", "-W", "2", dst],
            capture_output=True,
            timeout=20,
        )
        return proc.returncode == 0

    def counters(self) -> dict[str, int]:
        text = self.ns(self.provider, "nft", "list", "table", "bridge", "macfilter")
        return {
            m[2]: int(m[1])
            for m in re.finditer(r"packets (\d+) bytes \d+ \S+ comment \"(\w+)\"", text)
        }


def netns(lab: Lab, name: str) -> str:
    run("ip", "netns", "add", name)
    lab.namespaces.append(name)
    lab.ns(name, "ip", "link", "set", "lo", "up")
    # IPv6 off: keeps RS/MLD noise away from the filter counters.
    for key in ("all", "default"):
        lab.ns(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
    return name


def provider(lab: Lab) -> None:
    t, p = lab.tag, lab.provider
    for cmd in (
        ["link", "add", f"opb{t}", "type", "bridge"],
        ["addr", "add", f"{lab.prefix}.1/24", "dev", f"opb{t}"],
        ["link", "set", f"opb{t}", "up"],
        ["link", "set", f"op{t}", "master", f"opb{t}", "up"],
    ):
        run("ip", "-n", p, *cmd)
    unicast = "ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00"
    rules = f"""table bridge macfilter {{
  chain pre {{
    type filter hook prerouting priority -200; policy accept;
    iifname "op{t}" ether saddr {UPLINK_MAC} counter accept comment "accepted"
    iifname "op{t}" counter drop comment "foreign_src"
  }}
  chain post {{
    type filter hook postrouting priority -200; policy accept;
    oifname "op{t}" ether daddr != {UPLINK_MAC} {unicast} counter drop comment "foreign_dst"
  }}
}}
"""
    run("ip", "netns", "exec", p, "nft", "-f", "-", stdin=rules)


def setup(lab: Lab) -> None:
    t = lab.tag
    lab.provider = netns(lab, f"mosovs-p{t}")
    lab.server = netns(lab, f"mosovs-s{t}")
    lab.container = netns(lab, f"mosovs-c{t}")
    run("ip", "link", "add", f"ou{t}", "address", UPLINK_MAC, "type", "veth", "peer", f"op{t}")
    run("ip", "link", "set", f"op{t}", "netns", lab.provider)
    run("ip", "link", "set", f"ou{t}", "netns", lab.server)
    run("ip", "link", "add", f"oc{t}", "type", "veth", "peer", f"ocp{t}", "address", CT_MAC)
    run("ip", "link", "set", f"ocp{t}", "netns", lab.container)
    run("ip", "link", "set", f"oc{t}", "netns", lab.server)
    run("ip", "-n", lab.server, "link", "set", f"ou{t}", "up")
    run("ip", "-n", lab.server, "link", "set", f"oc{t}", "up")
    c = lab.container
    run("ip", "-n", c, "addr", "add", f"{lab.prefix}.50/24", "dev", f"ocp{t}")
    run("ip", "-n", c, "link", "set", f"ocp{t}", "up")
    provider(lab)


def start_daemons(lab: Lab) -> tuple[int, int]:
    """ovs.start inside the server netns, so the daemons live there."""
    code = (
        "import json, sys; from mosnet.ovs import vswitch\n"
        "r = vswitch.start(sys.argv[1], datapath='netdev')\n"
        "print(json.dumps([r.ovsdb_pid, r.vswitchd_pid, list(r.errors)]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = ["ip", "netns", "exec", lab.server, sys.executable, "-c", code, lab.run_dir]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    db_pid, sw_pid, errors = json.loads(out.stdout)
    assert errors == [], errors
    assert db_pid and sw_pid
    return int(db_pid), int(sw_pid)


def vsctl_get(lab: Lab, *args: str) -> str:
    db = f"--db=unix:{vswitch.paths(lab.run_dir)['db_sock']}"
    return run("ovs-vsctl", db, "get", *args).strip().strip('"')


@contextlib.contextmanager
def running_lab(run_dir: pathlib.Path) -> Iterator[Lab]:
    """The three namespaces wired up; OVS stopped and namespaces removed after."""
    pid = os.getpid()
    lab = Lab(str(pid), f"10.98.{pid % 250 + 1}", str(run_dir))
    try:
        setup(lab)
        yield lab
    finally:
        vswitch.stop(lab.run_dir)  # by pidfile: appctl exit, else SIGTERM
        for ns in reversed(lab.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
