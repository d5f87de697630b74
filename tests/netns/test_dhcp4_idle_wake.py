"""The DHCP renew loop sleeps until there is something to do (issue 7, idle CPU).

Under a real dnsmasq (2-minute leases: T1 at 60 s) and the real kernel:

* bound and idle, the client's thread does not wake at all (its voluntary
  context switches, each a sleep that ended, stay put over 3 s; the old 1 s
  poll made one per second);
* a carrier flap much shorter than the old poll period reaches it as an
  rtnetlink notification and it re-verifies the lease (INIT-REBOOT) at once;
* SIGTERM ends the loop at once, although the next deadline is a minute away.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.netns.conftest import DhcpNet

pytestmark = pytest.mark.netns

CLIENT = textwrap.dedent("""
    import logging, pathlib, signal, sys, time
    from mosnet.base import log
    from mosnet.base import wake
    from mosnet.dhcp4 import Client, ClientConfig, Config
    from mosnet.topology.netapply import apply_lease

    ifname, outdir = sys.argv[1], pathlib.Path(sys.argv[2])
    log.setup(level=logging.DEBUG)
    client = Client(ifname, config=ClientConfig(machine=Config(min_retransmit=2.0),
                                                probe_count=0))
    lease = client.acquire(timeout=15.0)
    if lease is None:
        sys.exit(3)
    apply_lease(lease, ifname, client.clock())
    stop = wake.Waker()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    def on_renew(l):
        apply_lease(l, ifname, client.clock())
        (outdir / "renewed").write_text(repr(time.monotonic()))
    (outdir / "bound").write_text(str(lease.address))
    client.run_forever(on_renew, lambda l: None, stop.is_set, on_renew, wake_fd=stop.fileno())
    (outdir / "stopped").write_text(repr(time.monotonic()))
""")


def _wait_for(path: pathlib.Path, timeout: float) -> str:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path.name} never appeared"
        time.sleep(0.02)
    return path.read_text()


def _wakeups(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/task/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def test_idle_client_sleeps_and_wakes_for_flap_and_sigterm(dhcp_net: DhcpNet) -> None:
    net = dhcp_net
    proc = net.popen_in(
        net.client_ns,
        [sys.executable, "-c", CLIENT, net.client_if, str(net.tmp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(net.tmp / "bound", 20)
    time.sleep(0.5)  # in run_forever, asleep until T1 (60 s)
    before = _wakeups(proc.pid)
    time.sleep(3.0)
    idle = _wakeups(proc.pid) - before
    assert idle <= 1, f"{idle} wake-ups in 3 idle seconds"

    down = ["ip", "-n", net.server_ns, "link", "set", net.server_if]
    subprocess.run([*down, "down"], check=True, timeout=10)
    time.sleep(0.15)  # far shorter than the old 1 s carrier poll
    subprocess.run([*down, "up"], check=True, timeout=10)
    t_up = time.monotonic()
    renewed = float(_wait_for(net.tmp / "renewed", 10))
    # the kernel's linkwatch may hold the "up" notification up to 1 s after "down"
    assert renewed - t_up < 2.5, renewed - t_up

    time.sleep(0.3)
    t_term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stopped = float(_wait_for(net.tmp / "stopped", 5))
    assert stopped - t_term < 1.0
    _, stderr = proc.communicate(timeout=10)
    err = stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    assert "link down" in err and "link up: re-verifying" in err, err[-3000:]
    assert "no link notifications" not in err, err[-3000:]
