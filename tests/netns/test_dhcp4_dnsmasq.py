"""mosnet's DHCPv4 client against a real dnsmasq across network namespaces."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
import time
from typing import Any

from tests.netns.conftest import DhcpNet

PY = (
    "/work/main/.venv/bin/python"
    if pathlib.Path("/work/main/.venv/bin/python").exists()
    else sys.executable
)

CLIENT = textwrap.dedent("""
    import json, sys, time, logging
    from mosnet.base import log
    from mosnet.state import resolvconf
    from mosnet.dhcp4 import Client, ClientConfig, Config, publish
    from mosnet.topology.netapply import apply_lease, remove_lease

    ifname, outdir = sys.argv[1], sys.argv[2]
    renew_after, want_renews = float(sys.argv[3]), int(sys.argv[4])
    log.setup(level=logging.DEBUG)
    cfg = ClientConfig(machine=Config(renew_after=renew_after or None, min_retransmit=2.0),
                       probe_count=1, probe_wait=0.3)
    client = Client(ifname, config=cfg)
    t0 = time.monotonic()
    lease = client.acquire(timeout=15.0)
    took = time.monotonic() - t0
    if lease is None:
        print(json.dumps({"lease": None})); sys.exit(3)
    apply_lease(lease, ifname, client.clock())
    apply_lease(lease, ifname, client.clock())  # replace semantics: a no-op
    publish.write_lease(lease, ifname, outdir)
    resolvconf.write_atomic(outdir + "/resolv.conf",
                            resolvconf.render(lease.dns, lease.search, "mosnet dhcp4 " + ifname))
    renewed = []
    if want_renews:
        def on_bind(l):
            renewed.append(l.acquired_at)
            apply_lease(l, ifname, client.clock())
        end = time.monotonic() + 30
        def stop():
            return len(renewed) >= want_renews or time.monotonic() > end
        client.run_forever(on_bind, lambda l: remove_lease(l, ifname), should_stop=stop)
    print(json.dumps({"lease": lease.to_json(), "took": took, "renewed": len(renewed),
                      "state": client.machine.state.value}))
""")

# Records every UDP packet to port 67 seen on the server's veth: (dst ip, DHCP msg type).
CAPTURE = textwrap.dedent("""
    import socket, struct, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    s.bind((sys.argv[1], 0x0800))
    out = open(sys.argv[2], "w", buffering=1)
    while True:
        p = s.recv(2048)
        ihl = (p[0] & 15) * 4
        if p[9] != 17 or struct.unpack_from("!H", p, ihl + 2)[0] != 67:
            continue
        d = p[ihl + 8:]
        i, mtype = 240, None
        while i + 1 < len(d) and d[i] != 255:
            if d[i] == 0: i += 1; continue
            if d[i] == 53: mtype = d[i + 2]
            i += 2 + d[i + 1]
        out.write(f"{socket.inet_ntoa(p[16:20])} {mtype} {socket.inet_ntoa(d[12:16])}\\n")
""")


def _run_client(net: DhcpNet, renew_after: float, renews: int) -> dict[str, Any]:
    res = net.run_in(
        net.client_ns,
        [PY, "-c", CLIENT, net.client_if, str(net.tmp), str(renew_after), str(renews)],
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-3000:] + net.dnsmasq_log()[-3000:]
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    out["stderr"] = res.stderr
    return out


def _mac(net: DhcpNet) -> str:
    res = net.run_in(net.client_ns, ["cat", f"/sys/class/net/{net.client_if}/address"], 5)
    return res.stdout.strip()


def _ip_json(net: DhcpNet, *args: str) -> list[dict[str, Any]]:
    res = net.run_in(net.client_ns, ["ip", "-j", *args], 5)
    parsed: list[dict[str, Any]] = json.loads(res.stdout)
    return parsed


def test_acquire_apply_and_resolvconf(dhcp_net: DhcpNet) -> None:
    net = dhcp_net
    out = _run_client(net, 0, 0)
    lease = out["lease"]
    assert isinstance(lease, dict)
    addr = lease["address"]
    assert str(addr).startswith(f"{net.prefix}.")
    mac = _mac(net)
    log = net.dnsmasq_log()
    for kind in ("DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK"):
        assert f"{kind}({net.server_if})" in log and mac in log, (kind, log)
    assert f"DHCPACK({net.server_if}) {addr} {mac}" in log
    addrs = _ip_json(net, "addr", "show", "dev", net.client_if)
    info = [a for a in addrs[0]["addr_info"] if a.get("local") == addr]
    assert info and info[0]["prefixlen"] == 24
    assert 0 < info[0]["valid_life_time"] <= 120, info  # lifetime = remaining lease
    routes = _ip_json(net, "route", "show", "default")
    assert routes and routes[0]["gateway"] == f"{net.prefix}.1", routes
    resolv = (net.tmp / "resolv.conf").read_text()
    assert f"nameserver {net.prefix}.53\nnameserver {net.prefix}.54\n" in resolv
    assert "search test.example lab.example" in resolv
    saved = json.loads((net.tmp / f"lease-{net.client_if}.json").read_text())
    assert saved["address"] == addr and saved["ifname"] == net.client_if
    assert "SELECTING -> REQUESTING" in str(out["stderr"])
    assert float(out["took"]) < 5.0


def test_renew_is_unicast_to_server(dhcp_net: DhcpNet) -> None:
    net = dhcp_net
    cap_file = net.tmp / "capture.txt"
    net.popen_in(
        net.server_ns,
        [PY, "-c", CAPTURE, net.server_if, str(cap_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)  # let the capture socket bind
    out = _run_client(net, 2.0, 1)
    assert out["renewed"] == 1, out["stderr"]
    addr = out["lease"]["address"]
    mac = _mac(net)
    log = net.dnsmasq_log()
    assert log.count(f"DHCPACK({net.server_if}) {addr} {mac}") >= 2, log
    assert "BOUND -> RENEWING" in str(out["stderr"])
    time.sleep(0.2)
    seen = [line.split() for line in cap_file.read_text().splitlines()]
    requests = [(dst, ciaddr) for dst, mtype, ciaddr in seen if mtype == "3"]
    # the selecting REQUEST is broadcast, the renewal unicast to the server with ciaddr set
    assert requests[0] == ("255.255.255.255", "0.0.0.0"), seen
    assert (f"{net.prefix}.1", addr) in requests[1:], seen
