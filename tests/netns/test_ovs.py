"""OVS backend on the userspace datapath: daemons, br-mosnet and MAC NAT flows.

    provider netns: opb<pid> bridge 10.X.Y.1/24, nft macfilter (ovs-in-qemu.md §5)
        └─ op<pid> ═veth═ ou<pid> ─┐
    server netns: ovsdb-server + ovs-vswitchd (datapath_type=netdev), br-mosnet
        public (internal, uplink MAC, 10.X.Y.10)
        oc<pid> ═veth═ ocp<pid> in the container netns (own MAC, 10.X.Y.50)

The provider drops frames from a source MAC other than the uplink's, and
unicast to another MAC. Negative control first: a plain NORMAL switch leaks
the container MAC and is dropped; then the MAC NAT flows get it through.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from mosnet import ovs, ovsflows
from mosnet.bridge import BRIDGE

REPO = pathlib.Path(__file__).resolve().parents[2]
UPLINK_MAC = "52:54:00:3c:00:01"
CT_MAC = "02:00:00:aa:bb:01"


def _run(*argv: str, check: bool = True, stdin: str = "") -> str:
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
        return _run("ip", "netns", "exec", ns, *argv, check=check)

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


def _netns(lab: Lab, name: str) -> str:
    _run("ip", "netns", "add", name)
    lab.namespaces.append(name)
    lab.ns(name, "ip", "link", "set", "lo", "up")
    # IPv6 off: keeps RS/MLD noise away from the filter counters.
    for key in ("all", "default"):
        lab.ns(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
    return name


def _provider(lab: Lab) -> None:
    t, p = lab.tag, lab.provider
    for cmd in (
        ["link", "add", f"opb{t}", "type", "bridge"],
        ["addr", "add", f"{lab.prefix}.1/24", "dev", f"opb{t}"],
        ["link", "set", f"opb{t}", "up"],
        ["link", "set", f"op{t}", "master", f"opb{t}", "up"],
    ):
        _run("ip", "-n", p, *cmd)
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
    _run("ip", "netns", "exec", p, "nft", "-f", "-", stdin=rules)


def _setup(lab: Lab) -> None:
    t = lab.tag
    lab.provider = _netns(lab, f"mosovs-p{t}")
    lab.server = _netns(lab, f"mosovs-s{t}")
    lab.container = _netns(lab, f"mosovs-c{t}")
    _run("ip", "link", "add", f"ou{t}", "address", UPLINK_MAC, "type", "veth", "peer", f"op{t}")
    _run("ip", "link", "set", f"op{t}", "netns", lab.provider)
    _run("ip", "link", "set", f"ou{t}", "netns", lab.server)
    _run("ip", "link", "add", f"oc{t}", "type", "veth", "peer", f"ocp{t}", "address", CT_MAC)
    _run("ip", "link", "set", f"ocp{t}", "netns", lab.container)
    _run("ip", "link", "set", f"oc{t}", "netns", lab.server)
    _run("ip", "-n", lab.server, "link", "set", f"ou{t}", "up")
    _run("ip", "-n", lab.server, "link", "set", f"oc{t}", "up")
    c = lab.container
    _run("ip", "-n", c, "addr", "add", f"{lab.prefix}.50/24", "dev", f"ocp{t}")
    _run("ip", "-n", c, "link", "set", f"ocp{t}", "up")
    _provider(lab)


def _start_daemons(lab: Lab) -> tuple[int, int]:
    """ovs.start inside the server netns, so the daemons live there."""
    code = (
        "import json, sys; from mosnet import ovs\n"
        "r = ovs.start(sys.argv[1], datapath='netdev')\n"
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


@pytest.fixture
def lab(tmp_path: pathlib.Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not (ovs.find_binary("ovs-vsctl") and ovs.find_binary("ovs-vswitchd")):
        pytest.skip("needs Open vSwitch (ovs-vsctl, ovs-vswitchd)")
    pid = os.getpid()
    run_dir = tmp_path / "ovs"
    run_dir.mkdir()
    lab = Lab(str(pid), f"10.98.{pid % 250 + 1}", str(run_dir))
    try:
        _setup(lab)
        yield lab
    finally:
        ovs.stop(lab.run_dir)  # by pidfile: appctl exit, else SIGTERM
        for ns in reversed(lab.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _vsctl_get(lab: Lab, *args: str) -> str:
    db = f"--db=unix:{ovs.paths(lab.run_dir)['db_sock']}"
    return _run("ovs-vsctl", db, "get", *args).strip().strip('"')


def test_ovs_macnat(lab: Lab) -> None:
    t, gw = lab.tag, f"{lab.prefix}.1"
    db_pid, sw_pid = _start_daemons(lab)
    for pid in (db_pid, sw_pid):
        assert pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"@"), pid

    res = ovs.build_bridge(f"ou{t}", "public", UPLINK_MAC, run_dir=lab.run_dir, datapath="netdev")
    assert res.ok, res.errors
    again = ovs.build_bridge(f"ou{t}", "public", UPLINK_MAC, run_dir=lab.run_dir, datapath="netdev")
    assert again.ok, again.errors  # idempotent
    assert ovs.vsctl(lab.run_dir, "--may-exist", "add-port", BRIDGE, f"oc{t}") is None
    assert _vsctl_get(lab, "bridge", BRIDGE, "fail_mode") == "secure"
    assert _vsctl_get(lab, "bridge", BRIDGE, "datapath_type") == "netdev"
    assert _vsctl_get(lab, "interface", "public", "mac_in_use") == UPLINK_MAC
    ctl = ovs.paths(lab.run_dir)["controller"]
    assert _vsctl_get(lab, "controller", BRIDGE, "target") == f"punix:{ctl}"
    assert _vsctl_get(lab, "controller", BRIDGE, "is_connected") == "false"
    assert "Not adding" not in pathlib.Path(ovs.paths(lab.run_dir)["vswitchd_log"]).read_text()
    assert ovs.tcp_listeners(proc=f"/proc/{sw_pid}") == []
    assert ovs.tcp_listeners(proc=f"/proc/{db_pid}") == []

    s = lab.server
    _run("ip", "-n", s, "addr", "add", f"{lab.prefix}.10/24", "dev", "public")
    _run("ip", "-n", s, "link", "set", "public", "up")

    # Negative control: a plain learning switch leaks the container MAC.
    assert ovs.replace_flows("priority=1,actions=NORMAL\n", lab.run_dir).ok
    assert lab.ping(s, gw), "host -> gateway through OVS"
    assert not lab.ping(lab.container, gw), "container must be filtered without MAC NAT"
    assert lab.counters()["foreign_src"] > 0

    flows = ovsflows.render(
        f"ou{t}", "public", UPLINK_MAC, {f"{lab.prefix}.50": (CT_MAC, f"oc{t}")}
    )
    res = ovs.replace_flows(flows, lab.run_dir)
    assert res.ok, res.errors
    lab.ns(lab.container, "ip", "neigh", "flush", "all")
    lab.ns(lab.provider, "ip", "neigh", "flush", "all")
    before = lab.counters()
    assert lab.ping(s, gw), "host -> gateway with MAC NAT flows"
    assert lab.ping(lab.container, gw), "container -> gateway with MAC NAT"
    after = lab.counters()
    assert after["foreign_src"] == before["foreign_src"], (before, after)
    assert after["foreign_dst"] == before["foreign_dst"], (before, after)
    assert after["accepted"] > before["accepted"]
    neigh = lab.ns(lab.provider, "ip", "neigh", "show", f"{lab.prefix}.50")
    assert UPLINK_MAC in neigh, neigh
