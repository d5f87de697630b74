"""mosnet's DHCPv4 client against ISC Kea: a Hetzner-style /32 lease whose
router lies outside the subnet, with and without option 121 (RFC 3442)."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.netns import kea
from tests.netns.kea import KeaNet

ROUTER_PREFIX = "10.94.{}"  # the gateway's prefix: not the client's subnet


@pytest.fixture
def net(tmp_path: pathlib.Path) -> Iterator[KeaNet]:
    with kea.kea_net(tmp_path, router_prefix=ROUTER_PREFIX.format(_third(tmp_path))) as n:
        yield n


def _third(tmp_path: pathlib.Path) -> int:
    return hash(str(tmp_path)) % 250 + 1


def _router(net: KeaNet) -> str:
    return ROUTER_PREFIX.format(_third(net.tmp)) + ".1"


def _start_slash32(net: KeaNet, options: list[dict[str, Any]]) -> str:
    addr = f"{net.prefix}.100"
    # Kea derives option 1 from the subnet, so the /32 is the subnet itself
    net.start_kea(
        net.config(valid=300, subnet=f"{addr}/32", pool=f"{addr} - {addr}", options=options)
    )
    return addr


def _route(routes: list[dict[str, Any]], dst: str) -> list[dict[str, Any]]:
    return [r for r in routes if r.get("dst") == dst]


# a TCP connect answered by the server namespace's RST proves the round trip
# through the on-link route works (no ping binary needed)
REACH = textwrap.dedent("""
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], 9), timeout=3)
    except ConnectionRefusedError:
        print("refused")
""")


def _assert_common(net: KeaNet, out: dict[str, Any], addr: str, router: str) -> None:
    lease = out["lease"]
    assert lease["address"] == addr and lease["prefixlen"] == 32, lease
    mac = net.mac()
    log = net.log_text()
    assert f"DHCP4_LEASE_ALLOC [hwtype=1 {mac}]" in log, log[-3000:]
    assert f"lease {addr} has been allocated for 300 seconds" in log
    assert f"DHCPACK (type 5) from {net.prefix}.1:67 to {addr}:68" in log
    addrs = net.client_addrs()
    assert [(a["local"], a["prefixlen"]) for a in addrs] == [(addr, 32)], addrs
    assert 0 < addrs[0]["valid_life_time"] <= 300, addrs  # lifetime = remaining lease
    assert "broadcast" not in addrs[0], addrs  # a /32 has none
    local = net.ip_json("-4", "route", "show", "table", "local", "dev", net.client_if)
    assert [r["type"] for r in local] == ["local"], local
    routes = net.client_routes()
    host = _route(routes, router)
    assert len(host) == 1 and host[0]["scope"] == "link" and "gateway" not in host[0], routes
    default = _route(routes, "default")
    assert len(default) == 1, routes
    assert default[0]["gateway"] == router and "onlink" in default[0]["flags"], routes
    assert all(r.get("protocol") == "dhcp" for r in routes), routes
    res = net.run_in(net.client_ns, [kea.PY, "-c", REACH, router], 10)
    assert res.stdout.strip() == "refused", res.stdout + res.stderr


def test_slash32_with_router_outside_subnet(net: KeaNet) -> None:
    router = _router(net)
    addr = _start_slash32(net, [{"name": "routers", "data": router}])
    out, stderr = kea.run_client(net, {"machine": {"min_retransmit": 2.0}})
    _assert_common(net, out, addr, router)
    routes = net.client_routes()
    assert {r["dst"] for r in routes} == {router, "default"}, routes
    assert f"bound {addr}/32 from {net.prefix}.1" in stderr


def test_option121_overrides_router_option(net: KeaNet) -> None:
    router = _router(net)
    decoy = router.rsplit(".", 1)[0] + ".254"  # option 3: must be ignored (RFC 3442)
    routes121 = [("10.250.0.0/16", router), ("0.0.0.0/0", router)]
    addr = _start_slash32(
        net,
        [
            {"name": "routers", "data": decoy},
            # Kea 2.2 has no text format for 121 yet: raw bytes
            {"code": 121, "csv-format": False, "data": kea.hex_routes(routes121)},
        ],
    )
    out, _ = kea.run_client(net, {"machine": {"min_retransmit": 2.0}})
    _assert_common(net, out, addr, router)
    assert out["lease"]["routers"] == [decoy]  # received, but not installed
    routes = net.client_routes()
    assert {r["dst"] for r in routes} == {router, "default", "10.250.0.0/16"}, routes
    assert not [r for r in routes if decoy in (r.get("dst"), r.get("gateway"))], routes
    extra = _route(routes, "10.250.0.0/16")[0]
    assert extra["gateway"] == router and "onlink" in extra["flags"], extra
    got = net.ip_json("-4", "route", "get", "10.250.3.4")
    assert got[0]["gateway"] == router, got
    # Kea's packet dump (debuglevel 55) shows what it sent
    log = net.log_text()
    assert "type=121" in log, log[-3000:]
