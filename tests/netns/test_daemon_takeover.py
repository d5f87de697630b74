"""A replaced daemon takes the lease over from the record, against a real dnsmasq (issue 13 §6).

The client namespace runs ``takeover_helper.py`` as PID 1 would: a lease,
then ``daemon.spawn`` with a proxy on the NIC (renewals every T1 s). Then,
in turn: the daemon is SIGKILLed, a running daemon dies of an uncaught
exception in a renewal, the watcher is SIGKILLed. Each time a new process
takes over within seconds; the new daemon renews the same address by
unicast REQUEST (dnsmasq ACKs it), dnsmasq never sees a DISCOVER after the
first lease, the address stays on the NIC, and exactly one proxy runs.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

from mosnet.state import status
from tests.mosprocs import children, new_pid, section, stop_all, wait_for
from tests.netns.conftest import DhcpNet

TOP = pathlib.Path(__file__).resolve().parents[2]
HELPER = pathlib.Path(__file__).with_name("takeover_helper.py")
T1 = 4


def acks_since(net: DhcpNet, mark: int, addr: str) -> int:
    return len(re.findall(rf"DHCPACK\([^)]*\) {re.escape(addr)} ", net.dnsmasq_log()[mark:]))


def addresses(net: DhcpNet) -> str:
    return net.run_in(net.client_ns, ["ip", "-4", "addr", "show", "dev", net.client_if], 10).stdout


def test_a_replaced_daemon_takes_the_lease_over(dhcp_net: DhcpNet, tmp_path: pathlib.Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    boot_log = run / "boot.log"
    argv = [sys.executable, "-u", str(HELPER), str(TOP), str(run), dhcp_net.client_if, str(T1)]
    helper = dhcp_net.popen_in(
        dhcp_net.client_ns, argv, stdout=subprocess.PIPE, stderr=(tmp_path / "helper.err").open("w")
    )
    try:
        assert helper.stdout is not None
        first = json.loads(helper.stdout.readline() or "{}")
        assert first, (tmp_path / "helper.err").read_text()[-3000:]
        addr, d1 = first["address"], first["daemon"]
        w1 = new_pid(run, "watch", "@mosnet-watch")
        (p1,) = wait_for(lambda: children(d1, "@mosnet-proxy"))
        discovers = dhcp_net.dnsmasq_log().count("DHCPDISCOVER")

        # 1. SIGKILL: the watcher starts a daemon that takes the lease over and renews it
        mark = len(dhcp_net.dnsmasq_log())
        os.kill(d1, signal.SIGKILL)
        d2 = new_pid(run, "daemon", "@mosnet-daemon", d1)
        wait_for(lambda: f"took over {addr}" in boot_log.read_text(), 10)
        wait_for(lambda: acks_since(dhcp_net, mark, addr) >= 1, 3 * T1)
        wait_for(lambda: not status.alive(p1, "@mosnet-proxy"), 5)
        (p2,) = wait_for(lambda: children(d2, "@mosnet-proxy"))
        assert f"inet {addr}/" in addresses(dhcp_net)
        assert section(run, "lease")["address"].startswith(addr + "/")

        # 2. an uncaught exception in a renewal ends a running daemon: same again
        mark = len(dhcp_net.dnsmasq_log())
        (run / "crash-next-renewal").touch()
        d3 = new_pid(run, "daemon", "@mosnet-daemon", d2)
        assert "RuntimeError: injected failure in a renewal" in boot_log.read_text()
        wait_for(lambda: acks_since(dhcp_net, mark, addr) >= 2, 4 * T1)  # d2's, then d3's
        assert len(children(d3, "@mosnet-proxy")) == 1 and not status.alive(p2, "@mosnet-proxy")

        # 3. SIGKILL to the watcher: the daemon starts a new one, which watches it
        os.kill(w1, signal.SIGKILL)
        w2 = new_pid(run, "watch", "@mosnet-watch", w1)
        assert status.alive(d3, "@mosnet-daemon")
        mark = len(dhcp_net.dnsmasq_log())
        os.kill(d3, signal.SIGKILL)
        new_pid(run, "daemon", "@mosnet-daemon", d3)
        wait_for(lambda: acks_since(dhcp_net, mark, addr) >= 1, 3 * T1)
    finally:
        stop_all(run)
        helper.terminate()
    text = boot_log.read_text()
    assert dhcp_net.dnsmasq_log().count("DHCPDISCOVER") == discovers, "a new DISCOVER"
    assert f"inet {addr}/" in addresses(dhcp_net)
    assert section(run, "watch")["restarts"] == {"@mosnet-daemon": 3, "@mosnet-watch": 1}
    assert section(run, "watch")["pid"] == w2
    assert text.count(f"took over {addr}") == 3, text[-3000:]
