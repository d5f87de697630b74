"""Apply a Hetzner-style static plan inside a network namespace, twice, and roll back.

A "server" namespace gets one veth end as its NIC; the other end sits in a
"provider" namespace holding the gateway (10.98.X.1, fe80::1). The plan runs
inside the server namespace through this file re-executed as a helper under
``ip netns exec`` (sysctls under /proc/sys follow the caller's namespace).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PID = os.getpid()
NET = f"10.98.{PID % 250 + 1}"
VOLATILE = {"stats", "stats64", "valid_life_time", "preferred_life_time"}


@dataclass
class Lab:
    srv: str
    prov: str
    nic: str
    resolv: pathlib.Path


def _ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


@pytest.fixture
def lab(tmp_path: pathlib.Path) -> Iterator[Lab]:
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/bin/busybox"):
        pytest.skip("needs root, iproute2 and /bin/busybox")
    lab = Lab(f"mosa-s{PID}", f"mosa-p{PID}", f"na{PID}", tmp_path / "resolv.conf")
    try:
        _ip("netns", "add", lab.srv)
        _ip("netns", "add", lab.prov)
        _ip(
            "link",
            "add",
            lab.nic,
            "netns",
            lab.srv,
            "type",
            "veth",
            "peer",
            "name",
            "uplink",
            "netns",
            lab.prov,
        )
        for addr in (f"{NET}.1/24", "fd00:98::1/64", "fe80::1/64"):
            _ip("-n", lab.prov, "addr", "add", addr, "dev", "uplink", "nodad")
        for ns, dev in ((lab.prov, "uplink"), (lab.prov, "lo"), (lab.srv, "lo")):
            _ip("-n", ns, "link", "set", dev, "up")
        yield lab
    finally:
        for ns in (lab.srv, lab.prov):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _apply(lab: Lab, fail_at: int | None = None) -> dict[str, Any]:
    argv = ["ip", "netns", "exec", lab.srv, sys.executable, __file__, NET, lab.nic, str(lab.resolv)]
    argv += [str(fail_at)] if fail_at else []
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO))
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _dump(lab: Lab) -> dict[str, Any]:
    """Links, addresses and routes of the server, once IPv6 DAD has settled."""
    end = time.monotonic() + 5
    while "tentative" in _ip("-n", lab.srv, "addr") and time.monotonic() < end:
        time.sleep(0.1)
    what = {
        "link": ["link", "show"],
        "addr": ["addr", "show"],
        "route4": ["route", "show"],
        "route6": ["-6", "route", "show"],
    }
    return {k: _strip(json.loads(_ip("-n", lab.srv, "-j", *v))) for k, v in what.items()}


def _link(dump: dict[str, Any], name: str) -> dict[str, Any]:
    link: dict[str, Any] | None = next((x for x in dump["link"] if x["ifname"] == name), None)
    assert link is not None, f"no link {name}"
    return link


def _addrs(dump: dict[str, Any], name: str) -> set[str]:
    entry: dict[str, Any] = next(
        (x for x in dump["addr"] if x["ifname"] == name), {"addr_info": []}
    )
    return {
        f"{a['local']}/{a['prefixlen']}" for a in entry["addr_info"] if a.get("scope") != "link"
    }


def _pings(lab: Lab) -> None:
    for target in (f"{NET}.2", "fd00:98::2"):
        proc = subprocess.run(
            ["ip", "netns", "exec", lab.prov, "/bin/busybox", "ping", "-c1", "-W2", target],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert proc.returncode == 0, f"ping {target}: {proc.stdout}{proc.stderr}"


def test_apply_twice_changes_nothing(lab: Lab) -> None:
    assert _apply(lab)["ok"]
    first = _dump(lab)
    nic_mac = _link(first, lab.nic)["address"]
    assert _link(first, lab.nic)["master"] == "br-mosnet"
    assert _link(first, "public-br")["master"] == "br-mosnet"
    assert _link(first, "public")["address"] == nic_mac
    assert _link(first, "br-mosnet")["address"] != nic_mac
    assert _addrs(first, "public") == {f"{NET}.2/32", "fd00:98::2/128"}
    assert _addrs(first, lab.nic) == set()
    routes4 = {(r["dst"], r.get("gateway"), r["dev"]) for r in first["route4"]}
    assert routes4 == {("default", f"{NET}.1", "public"), (f"{NET}.1", None, "public")}
    assert {"dst": "default", "gateway": "fe80::1", "dev": "public"}.items() <= next(
        r for r in first["route6"] if r["dst"] == "default"
    ).items()
    assert "nameserver 192.0.2.53" in lab.resolv.read_text()
    _pings(lab)
    assert _apply(lab)["ok"]
    assert _dump(lab) == first


def test_failure_rolls_back_to_the_nic(lab: Lab) -> None:
    result = _apply(lab, fail_at=13)  # after the NIC joined the bridge
    assert not result["ok"] and result["rolled_back"] and result["done"] == 12
    assert result["errors"] == [result["failed"]]  # the rollback itself was clean
    dump = _dump(lab)
    assert {x["ifname"] for x in dump["link"]} == {"lo", lab.nic}
    assert "master" not in _link(dump, lab.nic)
    assert _addrs(dump, lab.nic) == {f"{NET}.2/32", "fd00:98::2/128"}
    routes4 = {(r["dst"], r.get("gateway"), r["dev"]) for r in dump["route4"]}
    assert routes4 == {("default", f"{NET}.1", lab.nic), (f"{NET}.1", None, lab.nic)}
    _pings(lab)


def _helper(net: str, nic: str, resolv: str, fail_at: int | None) -> None:
    """Inside the server namespace: discover, plan, apply, print the result as JSON."""
    import dataclasses
    from ipaddress import IPv4Address, IPv6Address

    from pyroute2 import IPRoute

    from mosnet.base import log
    from mosnet.config.model import Ip4Static, Ip6Static, NetConfig
    from mosnet.topology.netapply import apply_plan
    from mosnet.topology.plan import plan
    from mosnet.uplink.discover import list_nics

    log.setup(stderr=True)
    cfg = NetConfig(
        ip4=Ip4Static(IPv4Address(f"{net}.2"), IPv4Address(f"{net}.1"), 32),
        ip6=Ip6Static(IPv6Address("fd00:98::2"), 128, IPv6Address("fe80::1")),
        nameservers=(IPv4Address("192.0.2.53"),),
    )
    with IPRoute() as ipr:
        nics = list_nics(ipr, include=[nic])
        result = apply_plan(plan(cfg, nics, nic, resolv_conf=resolv), ipr, fail_at=fail_at)
    print(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    args = sys.argv[1:]
    _helper(args[0], args[1], args[2], int(args[3]) if len(args) > 3 else None)
