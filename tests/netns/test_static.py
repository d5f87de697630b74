"""Static mode end to end against a real provider namespace.

The provider bridges the gateway (10.96.N.1, fe80::1, fd00:96::1) and routes
addresses "beyond" it (on its loopback). The server has three veth NICs, only
n1 reaches the provider; n0 and n2 go to a dead end but have carrier.
mosnet runs inside the server namespace as it would at boot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
N = os.getpid() % 200 + 20
GW4, BEYOND4 = f"10.96.{N}.1", "10.95.0.1"
BEYOND6 = "fd00:95::1"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def _ns(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    names = {k: f"ms{k}{os.getpid()}" for k in ("srv", "prov", "dead")}
    srv, prov, dead = names["srv"], names["prov"], names["dead"]
    try:
        for ns in names.values():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", prov, "link", "add", "br0", "type", "bridge")
        _ip("-n", prov, "addr", "add", f"{GW4}/24", "dev", "br0")
        _ip("-n", prov, "addr", "add", "fe80::1/64", "dev", "br0", "nodad")
        _ip("-n", prov, "addr", "add", "fd00:96::1/64", "dev", "br0", "nodad")
        _ip("-n", prov, "addr", "add", f"{BEYOND4}/32", "dev", "lo")
        _ip("-n", prov, "addr", "add", f"{BEYOND6}/128", "dev", "lo")
        _ip("-n", prov, "link", "set", "br0", "up")
        for i in range(3):
            peer_ns = prov if i == 1 else dead
            _ip("-n", srv, "link", "add", f"n{i}", "type", "veth", "peer", "p", "netns", peer_ns)
            _ip("-n", peer_ns, "link", "set", "p", "name", f"p{i}")
            if i == 1:
                _ip("-n", prov, "link", "set", "p1", "master", "br0")
            _ip("-n", peer_ns, "link", "set", f"p{i}", "up")
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _bring_up(srv: str, cmdline: str, tmp: Path) -> dict[str, object]:
    """Run mosnet.netphase.static in the server namespace; return what it decided."""
    code = (
        "import json, sys; from mosnet.base import log; from mosnet.config import cmdline;"
        " from mosnet.netphase import static; log.setup(); r = cmdline.parse(sys.argv[1]);"
        " res = static.bring_up(r.config, sys.argv[2], include=('n0','n1','n2'));"
        " print(json.dumps({'chosen': res.uplink.nic, 'ok': res.applied.ok,"
        " 'errors': res.plan.errors}))"
    )
    run_dir = str(tmp / "run")
    out = _ns(srv, sys.executable, "-c", code, cmdline + f" nameserver={GW4}", run_dir, timeout=60)
    assert out.returncode == 0, out.stderr
    (tmp / "mosnet.log").write_text(out.stderr)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ping(ns: str, addr: str) -> bool:
    return _ns(ns, "/bin/busybox", "ping", "-c", "1", "-W", "3", addr).returncode == 0


def _check_reachable(srv: str) -> None:
    for addr in (GW4, BEYOND4, BEYOND6):
        assert _ping(srv, addr), f"{addr} not reachable through br-mosnet"


def test_probe_picks_the_nic_that_reaches_the_gateway_hetzner_32(
    topo: dict[str, str], tmp_path: Path
) -> None:
    srv = topo["srv"]
    res = _bring_up(
        srv, f"mosip4=10.96.{N}.50,{GW4},255.255.255.255 mosip6=fd00:96::50/128,fe80::1", tmp_path
    )
    assert res == {"chosen": "n1", "ok": True, "errors": []}
    log = (tmp_path / "mosnet.log").read_text()
    assert f"gateway {GW4} answers on n1" in log
    routes = _ns(srv, "ip", "route").stdout
    assert f"default via {GW4} dev public proto static onlink" in routes
    assert f"{GW4} dev public proto static scope link" in routes
    assert "default via fe80::1 dev public" in _ns(srv, "ip", "-6", "route").stdout
    ports = json.loads(_ns(srv, "ip", "-j", "link", "show", "master", "br-mosnet").stdout)
    assert sorted(p["ifname"] for p in ports) == ["n1", "public-br"]
    _check_reachable(srv)
    # The gateway learned our address at the NIC's MAC (n1's), nothing else.
    n1_mac = _ns(srv, "cat", "/sys/class/net/n1/address").stdout.strip()
    neigh = _ns(topo["prov"], "ip", "neigh", "show", f"10.96.{N}.50").stdout
    assert n1_mac in neigh


def test_explicit_device_skips_the_probe(topo: dict[str, str], tmp_path: Path) -> None:
    srv = topo["srv"]
    res = _bring_up(srv, f"mosip4=10.96.{N}.60,{GW4},255.255.255.0,n1", tmp_path)
    assert res == {"chosen": "n1", "ok": True, "errors": []}
    log = (tmp_path / "mosnet.log").read_text()
    assert "no gateway probe" in log and "answers on" not in log
    assert _ping(srv, GW4) and _ping(srv, BEYOND4)


def test_ipv6_only_uses_neighbor_solicitation(topo: dict[str, str], tmp_path: Path) -> None:
    srv = topo["srv"]
    res = _bring_up(srv, "mosip6=fd00:96::70/64,fe80::1", tmp_path)
    assert res == {"chosen": "n1", "ok": True, "errors": []}
    assert "gateway fe80::1 answers on n1" in (tmp_path / "mosnet.log").read_text()
    assert _ping(srv, BEYOND6)


def test_no_nic_reaches_the_gateway_configures_nothing(
    topo: dict[str, str], tmp_path: Path
) -> None:
    srv = topo["srv"]
    res = _bring_up(srv, f"mosip4=10.96.{N}.80,10.96.{N}.254,255.255.255.0", tmp_path)
    assert res["chosen"] is None and res["ok"] is False
    assert "br-mosnet" not in _ns(srv, "ip", "link").stdout
