"""dracut lines end to end in namespaces: ifname= renames, BOOTIF restricts the DHCP
probe, ip= hostname/MTU/MAC, rd.peerdns=0, static ip= on a named device.

Each bring-up runs in the client netns under ``unshare --uts``: the ip= host
name is set for real, in a UTS namespace of its own.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Any

from tests.netns.conftest import DhcpLab

NET = os.getpid() % 250 + 1

BRING_UP = textwrap.dedent("""
    import json, socket, sys
    from mosnet.base import log
    from mosnet.config import cmdline
    from mosnet.netphase import phase
    log.setup()
    cfg = cmdline.parse(sys.argv[1]).config
    res = phase.bring_up(cfg, sys.argv[2], include=tuple(sys.argv[3].split(",")))
    print(json.dumps({"nic": res.uplink.nic, "port": res.port, "errors": list(res.errors),
                      "lease": str(res.lease.address) if res.lease else None,
                      "links": [str(a) for a in res.plan.links],
                      "hostname": socket.gethostname()}))
""")


def _bring_up(lab: DhcpLab, line: str, names: list[str]) -> dict[str, Any]:
    argv = ["unshare", "--uts", sys.executable, "-c", BRING_UP, line, str(lab.tmp / "run"),
            ",".join(names)]  # fmt: skip
    out = lab.run_in(lab.client_ns, argv, timeout=90)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _link(lab: DhcpLab, dev: str) -> dict[str, Any]:
    out = lab.run_in(lab.client_ns, ["ip", "-j", "addr", "show", "dev", dev], timeout=10)
    assert out.returncode == 0, out.stderr
    found: dict[str, Any] = json.loads(out.stdout)[0]
    return found


def test_dhcp_line_bootif_rename_mtu_hostname_peerdns(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    other, boot = lab.add_nic(f"10.93.{NET}"), lab.add_nic(f"10.94.{NET}")
    mac = _link(lab, boot.client_if)["address"]
    line = (f"BOOTIF=01-{mac.replace(':', '-')} ifname=uplink{NET}:{mac} "
            "ip=::::web7::dhcp:1400 rd.peerdns=0 nameserver=10.0.0.53")  # fmt: skip
    res = _bring_up(lab, line, [other.client_if, boot.client_if])
    assert res["nic"] == f"uplink{NET}" and res["port"] == "mos" and res["errors"] == []
    assert res["lease"].startswith(f"10.94.{NET}."), res
    assert (
        res["links"][0]
        == f"ip link set dev {boot.client_if} name uplink{NET}  (ifname=uplink{NET}:{mac})"
    )
    # BOOTIF: the other NIC, with a server of its own, was never asked.
    assert "DHCPDISCOVER" not in other.log_path.read_text()
    log = boot.log_path.read_text()
    assert "client provides name: web7" in log, log
    assert res["hostname"] == "web7"
    for dev in (f"uplink{NET}", "br-mosnet", "mos", "mos-br"):
        assert _link(lab, dev)["mtu"] == 1400, dev
    assert _link(lab, "mos")["address"] == mac
    # rd.peerdns=0: DHCP's servers stay out, nameserver= stays in.
    resolv = (lab.tmp / "run" / "resolv.conf").read_text()
    assert "nameserver 10.0.0.53" in resolv and f"10.94.{NET}.53" not in resolv, resolv


def test_rd_bootif_0_probes_every_nic(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    first, second = lab.add_nic(f"10.95.{NET}"), lab.add_nic(f"10.96.{NET}")
    mac = _link(lab, second.client_if)["address"]
    line = f"BOOTIF=01-{mac.replace(':', '-')} rd.bootif=0 mosdhcp_timeout=4"
    res = _bring_up(lab, line, [first.client_if, second.client_if])
    assert res["lease"] is not None and res["errors"] == []
    for nic in (first, second):
        assert "DHCPDISCOVER" in nic.log_path.read_text(), nic.client_if
    resolv = (lab.tmp / "run" / "resolv.conf").read_text()
    assert ".53" in resolv and "10.0.0.53" not in resolv


def test_static_line_names_the_device_and_sets_mac_and_mtu(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    decoy, nic = lab.add_nic(None), lab.add_nic(f"10.97.{NET}")
    new_mac = "02:00:00:00:97:01"
    line = (f"ip=10.97.{NET}.10::10.97.{NET}.1:255.255.255.0:static7:{nic.client_if}:none:"
            f"1450:{new_mac}")  # fmt: skip
    res = _bring_up(lab, line, [decoy.client_if, nic.client_if])
    assert (res["nic"], res["port"], res["errors"]) == (nic.client_if, "public", [])
    assert res["hostname"] == "static7"
    for dev in (nic.client_if, "br-mosnet", "public", "public-br"):
        assert _link(lab, dev)["mtu"] == 1450, dev
    assert _link(lab, nic.client_if)["address"] == new_mac == _link(lab, "public")["address"]
    addrs = [a["local"] for a in _link(lab, "public")["addr_info"] if a["family"] == "inet"]
    assert addrs == [f"10.97.{NET}.10"]
    ping = lab.run_in(
        lab.client_ns, ["/bin/busybox", "ping", "-c", "2", "-W", "3", f"10.97.{NET}.1"], 20
    )
    assert ping.returncode == 0, ping.stdout
    neigh = lab.run_in(nic.peer_ns, ["ip", "-j", "neigh", "show", f"10.97.{NET}.10"], 10)
    assert new_mac in neigh.stdout, neigh.stdout


def test_ifname_swaps_names_and_applying_twice_changes_nothing(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    a, b = lab.add_nic(None), lab.add_nic(None)
    mac_a, mac_b = _link(lab, a.client_if)["address"], _link(lab, b.client_if)["address"]
    line = f"ifname={b.client_if}:{mac_a} ifname={a.client_if}:{mac_b}"
    script = textwrap.dedent("""
        import sys
        from mosnet.config import cmdline
        from mosnet.netphase import links
        cfg = cmdline.parse(sys.argv[1]).config
        for _ in range(2):
            got = links.set_up(cfg, tuple(sys.argv[2:]))
            print(len(got.stack.actions), list(got.errors))
    """)
    out = lab.run_in(lab.client_ns, [sys.executable, "-c", script, line, a.client_if,
                                     b.client_if], 30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["2 []", "0 []"], out.stdout
    assert _link(lab, a.client_if)["address"] == mac_b
    assert _link(lab, b.client_if)["address"] == mac_a
