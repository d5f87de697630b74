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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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

    def popen_in(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``ns``; the fixture stops it by PID at teardown."""
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], env=env, **kw
        )
        self.procs.append(proc)
        return proc

    def run_in(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

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


def start_dnsmasq(
    popen: Callable[..., subprocess.Popen[bytes]],
    ns: str,
    iface: str,
    prefix: str,
    tmp: pathlib.Path,
    log_path: pathlib.Path,
) -> None:
    """dnsmasq serving ``prefix``.100-150 on ``iface`` in ``ns``; wait until it is up."""
    tag = iface
    dnsmasq = popen(
        ns,
        [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            f"--interface={iface}",
            "--except-interface=lo",
            f"--dhcp-range={prefix}.100,{prefix}.150,255.255.255.0,2m",
            f"--dhcp-option=option:router,{prefix}.1",
            f"--dhcp-option=option:dns-server,{prefix}.53,{prefix}.54",
            "--dhcp-option=option:domain-search,test.example,lab.example",
            "--log-dhcp",
            f"--log-facility={log_path}",
            f"--dhcp-leasefile={tmp / f'leases-{tag}'}",
            f"--pid-file={tmp / f'dnsmasq-{tag}.pid'}",
            "--user=root",
            "--no-ping",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    end = time.monotonic() + 5
    while "DHCP, IP range" not in _read(log_path) and time.monotonic() < end:
        if dnsmasq.poll() is not None:
            raise RuntimeError(f"dnsmasq died: {dnsmasq.communicate()[1]!r}")
        time.sleep(0.05)


def _read(path: pathlib.Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not shutil.which("ip") or not os.path.exists(DNSMASQ):
        pytest.skip("needs iproute2 and dnsmasq")


@pytest.fixture
def dhcp_net(tmp_path: pathlib.Path) -> Iterator[DhcpNet]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not shutil.which("ip") or not os.path.exists(DNSMASQ):
        pytest.skip("needs iproute2 and dnsmasq")
    pid = os.getpid()
    net = DhcpNet(
        f"mosd-s{pid}",
        f"mosd-c{pid}",
        f"ms{pid}",
        f"mc{pid}",
        f"10.99.{pid % 250 + 1}",
        tmp_path,
        tmp_path / "dnsmasq.log",
    )
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
        start_dnsmasq(
            net.popen_in, net.server_ns, net.server_if, net.prefix, tmp_path, net.log_path
        )
        yield net
    finally:
        for proc in reversed(net.procs):
            _stop(proc)
        for ns in (net.client_ns, net.server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        sys.stdout.flush()


@dataclass
class LabNic:
    client_if: str
    peer_if: str
    peer_ns: str
    prefix: str | None  # served by dnsmasq on the peer, or a dead end
    log_path: pathlib.Path


@dataclass
class DhcpLab:
    """One client netns with several veth NICs, each peer in a netns of its own."""

    client_ns: str
    tmp: pathlib.Path
    tag: str  # unique per test process: the pid
    nics: list[LabNic] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def popen_in(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], env=env, **kw
        )
        self.procs.append(proc)
        return proc

    def run_in(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def add_nic(self, prefix: str | None) -> LabNic:
        """A veth NIC in the client netns; dnsmasq serves ``prefix``.0/24 behind it if given."""
        k = len(self.nics) + 1
        nic = LabNic(
            f"mpc{self.tag}{k}",
            f"mps{self.tag}{k}",
            f"mosp-s{self.tag}-{k}",
            prefix,
            self.tmp / f"dnsmasq-{k}.log",
        )
        _ip("netns", "add", nic.peer_ns)
        self.namespaces.append(nic.peer_ns)
        _ip("link", "add", nic.client_if, "type", "veth", "peer", "name", nic.peer_if)
        _ip("link", "set", nic.peer_if, "netns", nic.peer_ns)
        _ip("link", "set", nic.client_if, "netns", self.client_ns)
        for ns, dev in ((nic.peer_ns, nic.peer_if), (self.client_ns, nic.client_if)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        if prefix is not None:
            _ip("-n", nic.peer_ns, "addr", "add", f"{prefix}.1/24", "dev", nic.peer_if)
            start_dnsmasq(self.popen_in, nic.peer_ns, nic.peer_if, prefix, self.tmp, nic.log_path)
        self.nics.append(nic)
        return nic


@pytest.fixture
def dhcp_lab(tmp_path: pathlib.Path) -> Iterator[DhcpLab]:
    _need_root()
    pid = os.getpid()
    lab = DhcpLab(f"mosp-c{pid}", tmp_path, str(pid))
    try:
        _ip("netns", "add", lab.client_ns)
        lab.namespaces.append(lab.client_ns)
        yield lab
    finally:
        for proc in reversed(lab.procs):
            _stop(proc)
        for ns in reversed(lab.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        sys.stdout.flush()
