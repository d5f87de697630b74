"""The parallel DHCP probe against real dnsmasq servers behind several veth NICs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time
from typing import Any

from tests.netns.conftest import DhcpLab, LabNic

PY = (
    "/work/main/.venv/bin/python"
    if pathlib.Path("/work/main/.venv/bin/python").exists()
    else sys.executable
)
NET = os.getpid() % 250 + 1  # third octet: parallel runs use separate namespaces anyway

PROBE = textwrap.dedent("""
    import json, logging, sys, time
    from mosnet.base import log
    from mosnet.uplink import offers
    log.setup(level=logging.DEBUG)
    names, timeout, prefer = sys.argv[1].split(","), float(sys.argv[2]), sys.argv[3] == "1"
    t0 = time.monotonic()
    res = offers.probe(names, timeout=timeout, prefer_private=prefer)
    out = {"t0": t0, "wall": time.monotonic() - t0, "result": None}
    if res is not None:
        out["result"] = {"ifname": res.ifname, "yiaddr": str(res.yiaddr),
                         "server_id": str(res.server_id), "mac": res.mac.hex(":"),
                         "elapsed": res.elapsed,
                         "seen": [[n, str(a), p] for n, a, p in res.offers_seen]}
    print(json.dumps(out))
""")

# Appends "<CLOCK_MONOTONIC> <DHCP message type>" for every packet to UDP port 67;
# netns share the monotonic clock, so times compare with the prober's.
CAPTURE = textwrap.dedent("""
    import socket, struct, sys, time
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    s.bind((sys.argv[1], 0x0800))
    out = open(sys.argv[2], "w", buffering=1)
    out.write("ready\\n")
    while True:
        try:
            p = s.recv(2048)
        except OSError:
            time.sleep(0.05); continue
        ihl = (p[0] & 15) * 4
        if p[9] != 17 or struct.unpack_from("!H", p, ihl + 2)[0] != 67:
            continue
        d, i, mtype = p[ihl + 8:], 240, None
        while i + 1 < len(d) and d[i] != 255:
            if d[i] == 0: i += 1; continue
            if d[i] == 53: mtype = d[i + 2]
            i += 2 + d[i + 1]
        out.write(f"{time.monotonic()} {mtype}\\n")
""")


def _capture(lab: DhcpLab, nic: LabNic) -> pathlib.Path:
    path = lab.tmp / f"capture-{nic.peer_if}.txt"
    lab.popen_in(
        nic.peer_ns,
        [PY, "-c", CAPTURE, nic.peer_if, str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 5
    while not (path.exists() and path.read_text().startswith("ready")):
        assert time.monotonic() < end, "capture did not start"
        time.sleep(0.05)
    return path


def _discovers(path: pathlib.Path) -> list[float]:
    lines = [line.split() for line in path.read_text().splitlines()[1:]]
    return [float(t) for t, kind in lines if kind == "1"]


def _probe(lab: DhcpLab, timeout: float, prefer_private: bool = True) -> dict[str, Any]:
    names = ",".join(n.client_if for n in lab.nics)
    res = lab.run_in(
        lab.client_ns,
        [PY, "-c", PROBE, names, str(timeout), "1" if prefer_private else "0"],
        timeout=timeout + 20,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    out["stderr"] = res.stderr
    return out


def _log_has(nic: LabNic, text: str, wait: float = 2.0) -> bool:
    end = time.monotonic() + wait  # dnsmasq may log a moment after it answered
    while time.monotonic() < end:
        if text in nic.log_path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def test_only_third_nic_has_a_server(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    nics = [lab.add_nic(None), lab.add_nic(None), lab.add_nic(f"10.97.{NET}")]
    caps = [_capture(lab, n) for n in nics]
    timeout = 6.0
    out = _probe(lab, timeout)
    res = out["result"]
    assert isinstance(res, dict), out["stderr"]
    assert res["ifname"] == nics[2].client_if and res["yiaddr"].startswith(f"10.97.{NET}.")
    assert res["server_id"] == f"10.97.{NET}.1"
    # one timeout in total, not one per dead NIC; in fact the private offer stops it at once
    assert res["elapsed"] < 2.0 < timeout, out["stderr"]
    t0 = float(out["t0"])
    for cap in caps:  # a DISCOVER reached every peer right at the start
        first = _discovers(cap)
        assert first and first[0] - t0 < 0.5, (cap.name, first, t0)
    assert _log_has(nics[2], f"DHCPDISCOVER({nics[2].peer_if})")
    assert _log_has(nics[2], f"DHCPOFFER({nics[2].peer_if}) {res['yiaddr']} {res['mac']}")


def test_no_server_anywhere_costs_one_timeout(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    nics = [lab.add_nic(None), lab.add_nic(None)]
    caps = [_capture(lab, n) for n in nics]
    out = _probe(lab, 3.5)
    assert out["result"] is None
    assert 3.4 < float(out["wall"]) < 4.5, out
    t0 = float(out["t0"])
    for cap in caps:  # retransmitted in step on both NICs: +0, +1, +3 s
        rel = [t - t0 for t in _discovers(cap)]
        assert len(rel) == 3, rel
        for got, want in zip(rel, (0.0, 1.0, 3.0), strict=True):
            assert abs(got - want) < 0.4, rel
    assert "DHCP probe: no offer on any NIC within 3.5 s" in str(out["stderr"])


def test_private_offer_preferred_unless_told_otherwise(dhcp_lab: DhcpLab) -> None:
    lab = dhcp_lab
    public = lab.add_nic(f"198.18.{NET}")  # benchmark range: "public" for this purpose
    private = lab.add_nic(f"10.96.{NET}")
    out = _probe(lab, 6.0)
    res = out["result"]
    assert isinstance(res, dict), out["stderr"]
    assert res["ifname"] == private.client_if and res["yiaddr"].startswith("10.96.")
    assert res["elapsed"] < 1.5, out["stderr"]  # a private offer ends the probe at once
    for nic in (public, private):
        assert _log_has(nic, f"DHCPDISCOVER({nic.peer_if})"), nic.log_path.read_text()
    out = _probe(lab, 6.0, prefer_private=False)
    res = out["result"]
    assert isinstance(res, dict), out["stderr"]
    assert res["ifname"] == public.client_if and res["yiaddr"].startswith("198.18.")
    assert res["elapsed"] < 1.5 + 0.5, out["stderr"]  # at most the grace period
    assert [public.client_if, res["yiaddr"], False] in res["seen"]
    for nic in (public, private):
        log = nic.log_path.read_text()
        assert log.count(f"DHCPDISCOVER({nic.peer_if})") >= 1, log
    assert _log_has(public, f"DHCPOFFER({public.peer_if}) {res['yiaddr']}")
