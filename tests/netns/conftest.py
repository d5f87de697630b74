"""A server netns running dnsmasq and a client netns, joined by a veth pair.

Names carry the test process pid so parallel runs do not collide; everything
is torn down by PID and ``ip netns del`` in the finalizer.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

DNSMASQ = "/usr/sbin/dnsmasq"
REPO = pathlib.Path(__file__).resolve().parents[2]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class DhcpNet:
    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    prefix: str  # "10.99.X"
    tmp: pathlib.Path
    log_path: pathlib.Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def popen_in(self, ns: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``ns``; the fixture stops it by PID at teardown."""
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", ns, *argv], env=env, **kw)
        self.procs.append(proc)
        return proc

    def run_in(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(["ip", "netns", "exec", ns, *argv], env=env, text=True,
                              capture_output=True, timeout=timeout)

    def dnsmasq_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture
def dhcp_net(tmp_path: pathlib.Path) -> Iterator[DhcpNet]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not shutil.which("ip") or not os.path.exists(DNSMASQ):
        pytest.skip("needs iproute2 and dnsmasq")
    pid = os.getpid()
    net = DhcpNet(f"mosd-s{pid}", f"mosd-c{pid}", f"ms{pid}", f"mc{pid}",
                  f"10.99.{pid % 250 + 1}", tmp_path, tmp_path / "dnsmasq.log")
    try:
        _ip("netns", "add", net.server_ns)
        _ip("netns", "add", net.client_ns)
        _ip("link", "add", net.client_if, "type", "veth", "peer", "name", net.server_if)
        _ip("link", "set", net.server_if, "netns", net.server_ns)
        _ip("link", "set", net.client_if, "netns", net.client_ns)
        _ip("-n", net.server_ns, "addr", "add", f"{net.prefix}.1/24", "dev", net.server_if)
        for ns, dev in ((net.server_ns, net.server_if), (net.client_ns, net.client_if)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        dnsmasq = net.popen_in(net.server_ns, [
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--bind-interfaces", f"--interface={net.server_if}", "--except-interface=lo",
            f"--dhcp-range={net.prefix}.100,{net.prefix}.150,255.255.255.0,2m",
            f"--dhcp-option=option:router,{net.prefix}.1",
            f"--dhcp-option=option:dns-server,{net.prefix}.53,{net.prefix}.54",
            "--dhcp-option=option:domain-search,test.example,lab.example",
            "--log-dhcp", f"--log-facility={net.log_path}",
            f"--dhcp-leasefile={tmp_path / 'leases'}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
            "--user=root", "--no-ping",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + 5
        while "DHCP, IP range" not in net.dnsmasq_log() and time.monotonic() < end:
            if dnsmasq.poll() is not None:
                raise RuntimeError(f"dnsmasq died: {dnsmasq.communicate()[1]!r}")
            time.sleep(0.05)
        yield net
    finally:
        for proc in reversed(net.procs):
            _stop(proc)
        for ns in (net.client_ns, net.server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        sys.stdout.flush()
