"""A link flap under a real dnsmasq: the client re-verifies its lease (INIT-REBOOT)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
import time

from tests.netns.conftest import DhcpNet

PY = (
    "/work/main/.venv/bin/python"
    if pathlib.Path("/work/main/.venv/bin/python").exists()
    else sys.executable
)

# Acquire, apply, write "bound", then run the daemon loop until one renewal
# (the re-verification ACK) or 30 s.
CLIENT = textwrap.dedent("""
    import json, logging, pathlib, sys, time
    from mosnet.base import log
    from mosnet.dhcp4 import Client, ClientConfig, Config
    from mosnet.topology.netapply import apply_lease

    ifname, outdir = sys.argv[1], pathlib.Path(sys.argv[2])
    log.setup(level=logging.DEBUG)
    cfg = ClientConfig(machine=Config(min_retransmit=2.0), probe_count=0, poll=0.1)
    client = Client(ifname, config=cfg)
    lease = client.acquire(timeout=15.0)
    if lease is None:
        print(json.dumps({"lease": None})); sys.exit(3)
    apply_lease(lease, ifname, client.clock())
    (outdir / "bound").write_text(str(lease.address))
    renewed, lost = [], []
    def on_renew(l):
        renewed.append(str(l.address))
        apply_lease(l, ifname, client.clock())
    end = time.monotonic() + 30
    client.run_forever(on_renew, lambda l: lost.append(str(l.address)),
                       should_stop=lambda: bool(renewed) or time.monotonic() > end,
                       on_renew=on_renew)
    print(json.dumps({"lease": str(lease.address), "renewed": renewed, "lost": lost,
                      "state": client.machine.state.value}))
""")


def _wait_for(path: pathlib.Path, timeout: float) -> str:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path.name} never appeared"
        time.sleep(0.05)
    return path.read_text()


def test_link_flap_reverifies_lease(dhcp_net: DhcpNet) -> None:
    net = dhcp_net
    proc = net.popen_in(
        net.client_ns,
        [PY, "-c", CLIENT, net.client_if, str(net.tmp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    addr = _wait_for(net.tmp / "bound", 20)
    time.sleep(0.3)  # the daemon loop has taken its first carrier reading
    before = net.dnsmasq_log()
    subprocess.run(
        ["ip", "-n", net.server_ns, "link", "set", net.server_if, "down"], check=True, timeout=10
    )
    time.sleep(1.0)
    subprocess.run(
        ["ip", "-n", net.server_ns, "link", "set", net.server_if, "up"], check=True, timeout=10
    )
    stdout, stderr = proc.communicate(timeout=40)
    err = stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out["renewed"] == [addr] and out["lost"] == [] and out["state"] == "BOUND", err
    assert "link down" in err and "link up: re-verifying" in err, err
    mac = net.run_in(
        net.client_ns, ["cat", f"/sys/class/net/{net.client_if}/address"], 5
    ).stdout.strip()
    after = net.dnsmasq_log()[len(before) :]
    # INIT-REBOOT: dnsmasq logs the REQUEST and ACKs the same address
    assert f"DHCPREQUEST({net.server_if}) {addr} {mac}" in after, after
    assert f"DHCPACK({net.server_if}) {addr} {mac}" in after, after
    assert "DHCPDISCOVER" not in after, after  # kept, not re-acquired from scratch
    shown = net.run_in(net.client_ns, ["ip", "-j", "addr", "show", "dev", net.client_if], 5)
    locals_ = [a.get("local") for a in json.loads(shown.stdout)[0]["addr_info"]]
    assert addr in locals_, shown.stdout
