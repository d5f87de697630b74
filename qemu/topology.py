"""A provider-side network namespace for QEMU guests: bridge, tap, dnsmasq.

The guest's NIC is a tap inside the namespace ``ns``; the namespace bridges it
to an address that plays gateway, DNS and DHCP server. Only private addresses
are used, only inside namespaces we create, and cleanup is by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, stdin=subprocess.DEVNULL)


@dataclass
class Gateway:
    """Namespace ``ns`` with bridge ``br0`` at ``<net>.1/24`` and tap ``tap0``.

    ``ipv6`` adds ``<net6>::1/64`` on br0 and has dnsmasq send RAs for
    ``<net6>::/64``: ``"slaac"`` (A flag, RDNSS ``dns6``, no DHCPv6) or
    ``"dhcpv6"`` (M flag, no A flag, stateful DHCPv6 from ``<net6>::100-1ff``,
    2 min leases). dnsmasq puts its one DNS option into both the RA's RDNSS and
    DHCPv6, so ``dns6`` differs per mode instead.
    """

    name: str
    workdir: Path
    net: str = "10.213.7"
    taps: tuple[str, ...] = ("tap0",)
    dnsmasq_args: tuple[str, ...] = ()
    pids: list[int] = field(default_factory=list)
    ipv6: str | None = None  # None | "slaac" | "dhcpv6"
    net6: str = "fd00:213:7"

    @property
    def address(self) -> str:
        return f"{self.net}.1"

    @property
    def address6(self) -> str:
        return f"{self.net6}::1"

    @property
    def dns6(self) -> str:
        """The IPv6 DNS server dnsmasq hands out: one per mode, so a test sees its source."""
        return f"{self.net6}::53" if self.ipv6 == "slaac" else f"{self.net6}::5:3"

    @property
    def dnsmasq_log(self) -> Path:
        return self.workdir / "dnsmasq.log"

    def start(self, *, dhcp: bool = True) -> Gateway:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _ip("netns", "add", self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")
        if self.ipv6 is not None:  # a router: it must not take its own looped-back RAs
            _ip("netns", "exec", self.name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        _ip("-n", self.name, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", "br0")
        if self.ipv6 is not None:
            _ip("-n", self.name, "addr", "add", f"{self.address6}/64", "dev", "br0", "nodad")
        _ip("-n", self.name, "link", "set", "br0", "up")
        for tap in self.taps:
            _ip("-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap")
            _ip("-n", self.name, "link", "set", tap, "master", "br0", "up")
        if dhcp:
            self.start_dnsmasq()
        return self

    def start_dnsmasq(self) -> None:
        argv = [
            "ip", "netns", "exec", self.name, "dnsmasq", "--keep-in-foreground",
            "--conf-file=/dev/null", "--user=root", "--bind-interfaces", "--interface=br0",
            "--except-interface=lo", "--no-ping", "--dhcp-authoritative", "--no-resolv",
            "--no-hosts", f"--listen-address={self.address}",
            f"--dhcp-range={self.net}.100,{self.net}.150,255.255.255.0,2m",
            f"--dhcp-option=option:router,{self.address}",
            f"--dhcp-option=option:dns-server,{self.address}",
            "--dhcp-option=option:domain-search,mosnet.test",
            f"--dhcp-leasefile={self.workdir / 'leases'}", "--log-dhcp",
            f"--log-facility={self.dnsmasq_log}", *self._ipv6_args(), *self.dnsmasq_args,
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.append(proc.pid)
        deadline = time.monotonic() + 10
        while not self.dnsmasq_log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _ipv6_args(self) -> tuple[str, ...]:
        if self.ipv6 is None:
            return ()
        net6 = self.net6
        if self.ipv6 == "slaac":  # RA only: prefix with the A flag and RDNSS
            return ("--enable-ra", f"--dhcp-range={net6}::,ra-only,64",
                    f"--dhcp-option=option6:dns-server,[{self.dns6}]")  # fmt: skip
        if self.ipv6 == "dhcpv6":  # M flag, no A flag: addresses only from DHCPv6
            return ("--enable-ra", f"--dhcp-range={net6}::100,{net6}::1ff,64,2m",
                    f"--dhcp-option=option6:dns-server,[{self.dns6}]")  # fmt: skip
        raise ValueError(f"ipv6 mode {self.ipv6!r}: slaac or dhcpv6")

    @property
    def http_log(self) -> Path:
        return self.workdir / "http.log"

    def serve_http(self, root: Path, port: int = 80) -> None:
        """A plain HTTP server for ``root`` at the gateway address (netboot loaders)."""
        argv = [
            "ip", "netns", "exec", self.name, sys.executable, "-u", "-m", "http.server",
            str(port), "--bind", self.address, "--directory", str(root),
        ]  # fmt: skip
        with open(self.http_log, "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self.pids.append(proc.pid)
        deadline = time.monotonic() + 10
        while b"Serving HTTP" not in self.http_log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)

    def run(self, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        for pid in self.pids:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        self.pids.clear()
        subprocess.run(["ip", "netns", "del", self.name], check=False, stdin=subprocess.DEVNULL)

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
