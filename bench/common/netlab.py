"""Network namespaces, veth pairs and dnsmasq for the benchmarks.

Only names starting with ``bn7-`` (namespaces) and ``b7`` (links), only
10.231.0.0/16 addresses, and only what this process created is removed:
processes by PID, namespaces by their own names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DNSMASQ = "/usr/sbin/dnsmasq"
NS_PREFIX = "bn7-"


def ip(*args: str) -> None:
    subprocess.run(
        ["ip", *args], check=True, capture_output=True, timeout=10, stdin=subprocess.DEVNULL
    )


def ip_out(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def tag() -> str:
    """Unique per bench process, short enough for 15-character link names."""
    return f"{os.getpid() % 100000:05d}"


@dataclass
class Lab:
    """Everything created for one benchmark, torn down in reverse by ``close``."""

    workdir: Path
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def netns(self, name: str) -> str:
        if not name.startswith(NS_PREFIX):
            raise ValueError(f"bench namespaces start with {NS_PREFIX}: {name}")
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def del_netns(self, name: str) -> None:
        if name in self.namespaces:
            self.namespaces.remove(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)

    def veth(self, a_ns: str, a: str, b_ns: str, b: str, *, a_mac: str | None = None) -> None:
        """A pair ``a`` (in ``a_ns``) -- ``b`` (in ``b_ns``); ``b`` is set up, ``a`` left down."""
        mac = ["address", a_mac] if a_mac else []
        ip("link", "add", a, *mac, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns)
        ip("-n", b_ns, "link", "set", b, "up")

    def dnsmasq(
        self, ns: str, iface: str, net: str, *, ra: bool = False, name: str = "dnsmasq"
    ) -> subprocess.Popen[bytes]:
        """dnsmasq on ``iface`` (which has ``net``.1/24): ``net``.100-150, 2 min leases.

        ``ra``: also router advertisements for fd00:231::/64 (SLAAC only, no
        DHCPv6); the interface must carry fd00:231::1/64 already.
        """
        log = self.workdir / f"{name}.log"
        argv = [
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--bind-interfaces", f"--interface={iface}", "--except-interface=lo",
            "--no-ping", "--dhcp-authoritative", "--no-resolv", "--no-hosts",
            f"--dhcp-range={net}.100,{net}.150,255.255.255.0,2m",
            f"--dhcp-option=option:router,{net}.1",
            f"--dhcp-option=option:dns-server,{net}.1",
            f"--dhcp-leasefile={self.workdir / (name + '.leases')}",
            "--log-dhcp", f"--log-facility={log}", "--user=root",
        ]  # fmt: skip
        if ra:
            argv += ["--enable-ra", "--dhcp-range=fd00:231::,ra-only,64,2m"]
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        end = time.monotonic() + 10
        while "DHCP, IP range" not in _read(log):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"dnsmasq died: {err.strip()}")
            if time.monotonic() > end:
                raise RuntimeError(f"dnsmasq did not start, see {log}")
            time.sleep(0.05)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()
        for ns in reversed(list(self.namespaces)):
            self.del_netns(ns)


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM by PID, then SIGKILL; never by name."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)


def wait_dad(ns: str, dev: str, timeout: float = 5.0) -> None:
    """Until no IPv6 address on ``dev`` is tentative (so RAs can be sent from it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = ip_out("-n", ns, "-6", "addr", "show", "dev", dev)
        if "inet6" in out and "tentative" not in out:
            return
        time.sleep(0.05)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
