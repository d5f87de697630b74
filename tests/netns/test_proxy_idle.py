"""The Linux-bridge proxy process sleeps when idle and stops at once (issue 7, idle CPU).

``proxyproc.child_main`` runs for real in a netns of its own (a veth pair,
IPv6 off so the kernel's own DAD/MLD frames stay away): ``proxyd.run`` on
the NIC and the NDP relay on all interfaces. Idle, none of its threads may
wake (voluntary context switches, each a sleep that ended, over 3 s; the old
0.25 s polls made 12 per thread). SIGTERM must end both loops within a
second, not after a poll period.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.netns

REPO = pathlib.Path(__file__).resolve().parents[2]
PROXY = textwrap.dedent("""
    import sys
    from ipaddress import ip_address
    from mosnet.base import log
    from mosnet.base import netif
    from mosnet.daemon import proxyproc
    from mosnet.proxy.answers import ProxyConfig
    log.setup()
    nic = sys.argv[1]
    cfg = ProxyConfig(netif.interface_mac(nic), frozenset({ip_address("10.76.0.2")}), frozenset(),
                      frozenset({ip_address("10.76.0.1")}))
    sys.exit(proxyproc.child_main(proxyproc.ProxySpec(nic, cfg)))
""")


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    ns = f"mpi{os.getpid()}"
    _ip("netns", "add", ns)
    try:
        no_ipv6 = "net.ipv6.conf.default.disable_ipv6=1"
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", no_ipv6], check=True, timeout=10
        )
        _ip("-n", ns, "link", "add", "nic0", "type", "veth", "peer", "name", "nic1")
        for dev in ("nic0", "nic1"):
            _ip("-n", ns, "link", "set", dev, "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _wakeups(pid: int) -> dict[str, int]:
    """Voluntary context switches per thread of ``pid``."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                out[task.name] = int(line.split()[1])
    return out


def test_idle_proxy_threads_sleep_and_sigterm_stops_them(netns: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", PROXY, "nic0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 15
        while len(_wakeups(proc.pid)) < 2:  # the relay thread is up
            assert proc.poll() is None and time.monotonic() < end, proc.communicate()
            time.sleep(0.05)
        time.sleep(1.0)  # both loops asleep on their sockets
        before = _wakeups(proc.pid)
        time.sleep(3.0)
        after = _wakeups(proc.pid)
        idle = {tid: after[tid] - n for tid, n in before.items()}
        assert len(idle) == 2 and max(idle.values()) <= 1, idle
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=5)
    err = stderr.decode(errors="replace")
    assert proc.returncode == 0 and took < 1.0, (took, err[-3000:])
    assert "ARP/NDP proxy stopped" in err, err[-3000:]
