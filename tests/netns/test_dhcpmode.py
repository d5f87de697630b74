"""DHCP mode end to end: probe three NICs at once, bridge the one with a server,
take the lease again on ``mos`` (which carries that NIC's MAC), apply it."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Any

from tests.netns.conftest import DhcpLab

NET = os.getpid() % 250 + 1

BRING_UP = textwrap.dedent("""
    import json, sys, tempfile
    from mosnet.config import cmdline
    from mosnet.netphase import dhcpmode
    from mosnet.base import log
    log.setup()
    cfg = cmdline.parse(sys.argv[1]).config
    run_dir = sys.argv[2]
    res = dhcpmode.bring_up(cfg, run_dir, include=tuple(sys.argv[3].split(",")))
    print(json.dumps({"nic": res.plan.nic, "port": res.port, "ok": res.applied.ok,
                      "lease": str(res.lease.address) if res.lease else None,
                      "v6": res.v6.mode if res.v6 else None}))
""")


def _ip_json(lab: DhcpLab, *args: str) -> list[dict[str, Any]]:
    out = lab.run_in(lab.client_ns, ["ip", "-j", *args], timeout=10)
    assert out.returncode == 0, out.stderr
    result: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    return result


def test_only_the_third_nic_has_a_server_and_becomes_the_uplink(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    dead1, dead2 = lab.add_nic(None), lab.add_nic(None)
    live = lab.add_nic(f"10.91.{NET}")
    names = ",".join(n.client_if for n in (dead1, dead2, live))
    run_dir = lab.tmp / "run"
    out = lab.run_in(
        lab.client_ns,
        [sys.executable, "-c", BRING_UP, "mosdhcp_timeout=8", str(run_dir), names],
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["nic"] == live.client_if and res["port"] == "mos" and res["ok"] is True
    assert res["lease"] and res["lease"].startswith(f"10.91.{NET}.")
    # Topology: the winner is the bridge's uplink, mos carries its MAC and the lease.
    ports = {p["ifname"] for p in _ip_json(lab, "link", "show", "master", "br-mosnet")}
    assert ports == {live.client_if, "mos-br"}
    nic = _ip_json(lab, "addr", "show", live.client_if)[0]
    mos = _ip_json(lab, "addr", "show", "mos")[0]
    assert mos["address"] == nic["address"]

    def v4(link: dict[str, Any]) -> list[str]:
        return [a["local"] for a in link["addr_info"] if a["family"] == "inet"]

    assert v4(mos) == [res["lease"]] and v4(nic) == []
    routes = _ip_json(lab, "route", "show", "default")
    assert routes and routes[0]["dev"] == "mos" and routes[0]["gateway"] == f"10.91.{NET}.1"
    # The server saw our MAC twice: once from the probe, once from mos.
    log = live.log_path.read_text()
    assert log.count("DHCPDISCOVER") >= 2 and f"DHCPACK({live.peer_if}) {res['lease']}" in log
    assert (run_dir / "lease-mos.json").exists()
    assert f"nameserver 10.91.{NET}.53" in (run_dir / "resolv.conf").read_text()
