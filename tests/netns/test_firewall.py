"""mosnet-firewall and mosnet-nat loaded by the real nft, proven with traffic.

Topology (names carry the pid; cleanup by PID and ``ip netns del``):

    client ns (upstream: router, dnsmasq, a LAN client) 10.81.X.1 / fd00:81:X::1
        |  veth
    host ns (mosnet) uplink 10.81.X.2 / fd00:81:X::2, default via 10.81.X.1
        |  bridge 10.82.X.1 with two veth ports
    backend ns 10.82.X.10 (no default route)   peer ns 10.82.X.20 (LAN peer)

Servers are small Python threads answering "<tag> <peer address>", so a
test can tell "dropped" (timeout) from "no listener" (refused) and see the
source address a backend sees. The module shares one lab; each test applies
the configuration it needs first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.netns.fwlab import APPLY, NFT, PY, REPO, Lab, foreign_json, fwd, ip, running_lab

GOLDEN = REPO / "tests" / "data" / "golden" / "nft"
DNSMASQ = "/usr/sbin/dnsmasq"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0 or NFT is None or not shutil.which("ip"):
        pytest.skip("needs root, iproute2 and nft")
    with running_lab(tmp_path_factory.mktemp("fw")) as lab:
        yield lab


# --- golden `nft list table` ---------------------------------------------------

LIST_CASES = {
    "list_ssh": ("mosfirewall=ssh", "inet mosnet-firewall"),
    "list_permissive": ("mosfirewall=permissive", "inet mosnet-firewall"),
    "list_custom": ("mosfirewall=ssh,tcp:8080,8000-8100,udp:53,51820", "inet mosnet-firewall"),
    "list_nat": ("mosfirewall=ssh mosnat=uplink0,8080:192.168.1.100:80/tcp", "ip mosnet-nat"),
}


@pytest.mark.parametrize("case", sorted(LIST_CASES))
def test_nft_list_golden(lab: Lab, case: str) -> None:
    """What the kernel holds after loading, in a throwaway netns (stable names)."""
    cmdline, table = LIST_CASES[case]
    ns = f"mosfw-g{lab.tag}"
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
        res = lab.run(ns, [PY, "-c", APPLY, cmdline], timeout=30)
        assert json.loads(res.stdout)["applied"], res.stderr
        text = lab.run(ns, [str(NFT), "list", "table", *table.split()]).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    path = GOLDEN / f"{case}.nft"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


# --- traffic -------------------------------------------------------------------


def test_ports_and_ping_v4_v6(lab: Lab) -> None:
    res = lab.apply("mosfirewall=ssh,tcp:2222,udp:5353")
    assert res["applied"] == ["inet mosnet-firewall"] and not res["errors"], res
    assert res["sysctls"] == []  # no NAT: forwarding left alone
    for dst in (lab.v4(81, 2), lab.v6(2)):
        assert lab.probe(lab.client, "tcp", dst, 2222)["ok"], dst
        assert lab.probe(lab.client, "tcp", dst, 2223) == {"ok": False, "err": "timeout"}
        # 22 is open in the firewall but nothing listens: refused, not dropped
        assert lab.probe(lab.client, "tcp", dst, 22)["err"] == "ConnectionRefusedError"
        assert lab.probe(lab.client, "udp", dst, 5353)["ok"], dst
        assert lab.probe(lab.client, "udp", dst, 5354) == {"ok": False, "err": "timeout"}
        ping = lab.run(lab.client, ["/bin/busybox", "ping", "-c", "1", "-W", "2", dst])
        assert ping.returncode == 0, ping.stdout + ping.stderr
    counters = lab.nft("list", "chain", "inet", "mosnet-firewall", "input")
    assert 'counter packets 0 bytes 0 comment "dropped by policy"' not in counters


DHCP = textwrap.dedent("""
    import json, sys, logging
    from mosnet.base import log
    from mosnet.dhcp4 import Client, ClientConfig, Config
    from mosnet.topology.netapply import apply_lease
    log.setup(level=logging.INFO)
    ifname = sys.argv[1]
    client = Client(ifname, config=ClientConfig(machine=Config(renew_after=1.0),
                                                probe_count=0))
    lease = client.acquire(10.0)
    if lease is None:
        print(json.dumps({"lease": None})); sys.exit(0)
    apply_lease(lease, ifname, client.clock())
    import time
    renewed, end = [], time.monotonic() + 20
    client.run_forever(lambda l: renewed.append(1), lambda l: None,
                       should_stop=lambda: bool(renewed) or time.monotonic() > end)
    print(json.dumps({"lease": str(lease.address), "renewed": len(renewed)}))
""")


def test_dhcp4_and_slaac_with_firewall_on(lab: Lab) -> None:
    res = lab.apply("mosfirewall=ssh")
    assert res["applied"] == ["inet mosnet-firewall"], res
    x, log_path = lab.x, lab.tmp / "dnsmasq.log"
    lab.popen(
        lab.client,
        [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            f"--interface={lab.client_if}",
            "--except-interface=lo",
            f"--dhcp-range=10.81.{x}.100,10.81.{x}.150,255.255.255.0,2m",
            f"--dhcp-range=::,constructor:{lab.client_if},ra-only,64,2m",
            "--enable-ra",
            "--ra-param=" + lab.client_if + ",3",
            "--log-dhcp",
            f"--log-facility={log_path}",
            f"--dhcp-leasefile={lab.tmp / 'leases'}",
            f"--pid-file={lab.tmp / 'dnsmasq.pid'}",
            "--user=root",
            "--no-ping",
        ],
    )
    out = lab.run(lab.host, [PY, "-c", DHCP, lab.uplink], timeout=60)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    dlog = log_path.read_text(errors="replace") if log_path.exists() else ""
    assert str(got["lease"]).startswith(f"10.81.{x}."), out.stderr + dlog
    assert got["renewed"] >= 1, out.stderr + dlog  # the renewal ACK is unicast UDP to :68
    end, addrs = time.monotonic() + 20, ""
    while time.monotonic() < end:
        addrs = lab.run(lab.host, ["ip", "-6", "addr", "show", "dev", lab.uplink]).stdout
        if "dynamic" in addrs and f"fd00:81:{x:x}:" in addrs:
            break
        time.sleep(0.5)
    assert "dynamic" in addrs, addrs + dlog  # SLAAC address from the RA


def test_port_forward_masquerade_hairpin(lab: Lab) -> None:
    res = lab.apply(f"mosfirewall=ssh mosnat=snat,{fwd(lab)}")
    assert res["applied"] == ["inet mosnet-firewall", "ip mosnet-nat"], res
    assert res["uplink"] == lab.uplink and res["sysctls"] == ["net.ipv4.ip_forward=1"]
    ext, inner = lab.v4(81, 2), lab.v4(82, 1)
    # from outside: reaches the backend, which has no route back: masquerade
    assert lab.probe(lab.client, "tcp", ext, 8080) == {"ok": True, "reply": f"backend {inner}"}
    assert lab.probe(lab.client, "udp", ext, 5300) == {"ok": True, "reply": f"backend {inner}"}
    # hairpin: the host itself and a peer on the backend's own LAN
    assert lab.probe(lab.host, "tcp", ext, 8080) == {"ok": True, "reply": f"backend {inner}"}
    assert lab.probe(lab.peer, "tcp", ext, 8080) == {"ok": True, "reply": f"backend {inner}"}
    # bridged LAN traffic is untouched; the internal side reaches out, masqueraded
    direct = lab.probe(lab.peer, "tcp", lab.v4(82, 10), 80)
    assert direct == {"ok": True, "reply": f"backend {lab.v4(82, 20)}"}
    assert lab.probe(lab.peer, "tcp", lab.v4(81, 1), 7000) == {"ok": True, "reply": f"client {ext}"}
    # but the uplink cannot open connections into the internal side
    assert lab.probe(lab.client, "tcp", lab.v4(82, 10), 80) == {"ok": False, "err": "timeout"}


def test_unknown_nat_iface_keeps_firewall_and_forwards(lab: Lab) -> None:
    res = lab.apply(f"mosfirewall=ssh,tcp:2222 mosnat=eth9,{fwd(lab)}")
    assert res["applied"] == ["inet mosnet-firewall", "ip mosnet-nat"], res
    assert "eth9" in str(res["errors"]) and "eth9" in str(res["log"])
    assert 'oifname "eth9"' not in lab.nft("list", "table", "ip", "mosnet-nat")
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 2223)["err"] == "timeout"
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 8080)["ok"]


def test_foreign_tables_survive_and_reapply_is_stable(lab: Lab) -> None:
    before = foreign_json(lab)
    assert {"podman-nat", "ts-filter"} <= {
        i["table"]["name"] for i in before if isinstance(i, dict) and "table" in i
    }
    cmdline = f"mosfirewall=permissive,udp:5353 mosnat=snat,{fwd(lab)}"
    lab.apply(cmdline)
    first = lab.nft("-s", "list", "ruleset")
    lab.apply(cmdline)
    assert lab.nft("-s", "list", "ruleset") == first
    assert foreign_json(lab) == before


def test_invalid_config_keeps_old_tables(lab: Lab) -> None:
    lab.apply(f"mosfirewall=ssh mosnat=snat,{fwd(lab)}")
    before = lab.nft("-s", "list", "ruleset")
    res = lab.apply("mosfirewall=ssh", "garbage")
    assert res["applied"] == [] and res["errors"], res
    assert "nft rejected" in str(res["log"]) and "Error" in str(res["log"])
    assert lab.nft("-s", "list", "ruleset") == before


def test_none_removes_the_firewall_table(lab: Lab) -> None:
    lab.apply("mosfirewall=ssh")
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 2223)["err"] == "timeout"
    res = lab.apply("mosfirewall=none mosnat=none")
    assert res["applied"] == ["deleted inet mosnet-firewall", "deleted ip mosnet-nat"], res
    assert "mosnet-" not in lab.nft("list", "tables")
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 2223)["ok"]
    assert "podman-nat" in lab.nft("list", "tables")
