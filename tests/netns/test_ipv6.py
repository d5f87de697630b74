"""mosnet's RA listener and DHCPv6 client against a real dnsmasq across network namespaces.

Each test gets its own server/client namespaces (names carry the pid), a
private fd00:9xxx::/64 and its own dnsmasq; everything is stopped by PID and
the namespaces deleted in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest

pytestmark = pytest.mark.netns

DNSMASQ = "/usr/sbin/dnsmasq"
REPO = pathlib.Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable

CLIENT = textwrap.dedent("""
    import json, logging, sys, time
    from mosnet.ipv6 import autoconf
    from mosnet.base import log
    from mosnet.dhcp6 import ClientConfig, Config
    from mosnet.state.resolvconf import DnsInfo, ResolvConf

    ifname, run_dir, want, renew_after, renews = sys.argv[1:6]
    log.setup(level=logging.DEBUG)
    cfg = ClientConfig(machine=Config(renew_after=float(renew_after) or None))
    t0 = time.monotonic()
    resolv = ResolvConf([run_dir + "/resolv.conf"], v4=DnsInfo(("192.0.2.53",)))
    st = autoconf.start(ifname, run_dir, want_dhcp6=want == "1", ra_timeout=8.0,
                        dhcp6_timeout=10.0, resolv=resolv, config=cfg)
    took = time.monotonic() - t0
    first = st.lease.to_json() if st.lease else None
    count = [0]
    if int(renews) and st.client is not None:
        orig = autoconf._on_bind
        def counting(state, lease):
            count[0] += 1
            orig(state, lease)
        autoconf._on_bind = counting
        end = time.monotonic() + 30
        autoconf.run_forever(st, lambda: count[0] >= int(renews) or time.monotonic() > end)
    autoconf.stop(st)
    ra = st.ra
    print(json.dumps({
        "mode": st.mode, "took": took, "lease": first, "renewed": count[0],
        "ra": None if ra is None else {"M": ra.managed, "O": ra.other,
              "rdnss": [str(a) for a in ra.rdnss],
              "prefixes": [str(p.network) for p in ra.prefixes],
              "lifetime": ra.router_lifetime},
        "errors": st.errors}))
""")


@dataclass
class V6Net:
    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    prefix: str  # "fd00:9abc:"  (+ ":1" is the server)
    tmp: pathlib.Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log_path(self) -> pathlib.Path:
        return self.tmp / "dnsmasq.log"

    def dnsmasq_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run_in(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def start_dnsmasq(self, *extra: str) -> None:
        argv = [
            "ip",
            "netns",
            "exec",
            self.server_ns,
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            f"--interface={self.server_if}",
            "--except-interface=lo",
            "--enable-ra",
            f"--dhcp-option=option6:dns-server,[{self.prefix}:1]",
            "--log-dhcp",
            f"--log-facility={self.log_path}",
            f"--dhcp-leasefile={self.tmp / 'leases'}",
            f"--pid-file={self.tmp / 'dnsmasq.pid'}",
            "--user=root",
            *extra,
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        end = time.monotonic() + 5
        while "router advertisement" not in self.dnsmasq_log() and time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"dnsmasq died: {proc.communicate()[1]!r}")
            time.sleep(0.05)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _sysctl(ns: str, key: str, value: str) -> None:
    _ip("netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")


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
def v6net(tmp_path: pathlib.Path) -> Iterator[V6Net]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not shutil.which("ip") or not os.path.exists(DNSMASQ):
        pytest.skip("needs iproute2 and dnsmasq")
    pid = os.getpid()
    net = V6Net(
        f"mos6-s{pid}",
        f"mos6-c{pid}",
        f"m6s{pid}",
        f"m6c{pid}",
        f"fd00:9{pid % 0x1000:03x}:",
        tmp_path,
    )
    try:
        _ip("netns", "add", net.server_ns)
        _ip("netns", "add", net.client_ns)
        _ip("link", "add", net.client_if, "type", "veth", "peer", "name", net.server_if)
        _ip("link", "set", net.server_if, "netns", net.server_ns)
        _ip("link", "set", net.client_if, "netns", net.client_ns)
        _sysctl(net.server_ns, "net.ipv6.conf.all.accept_dad", "0")
        _sysctl(net.server_ns, f"net.ipv6.conf.{net.server_if}.accept_dad", "0")
        # as on the bridge port `mos`: SLAAC even where forwarding is on
        _sysctl(net.client_ns, f"net.ipv6.conf.{net.client_if}.accept_ra", "2")
        _ip("-n", net.server_ns, "addr", "add", f"{net.prefix}:1/64", "dev", net.server_if)
        for ns, dev in ((net.server_ns, net.server_if), (net.client_ns, net.client_if)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        yield net
    finally:
        for proc in reversed(net.procs):
            _stop(proc)
        for ns in (net.client_ns, net.server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _client(net: V6Net, want: bool, renew_after: float = 0, renews: int = 0) -> dict[str, object]:
    argv = [
        PY,
        "-c",
        CLIENT,
        net.client_if,
        str(net.tmp),
        "1" if want else "0",
        str(renew_after),
        str(renews),
    ]
    res = net.run_in(net.client_ns, argv, timeout=90)
    assert res.returncode == 0, res.stderr[-3000:] + net.dnsmasq_log()[-3000:]
    out: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    out["stderr"] = res.stderr
    assert "Traceback" not in res.stderr and "FREEBIND" not in res.stderr, res.stderr[-3000:]
    return out


def _wait_for(net: V6Net, argv: list[str], needle: str, timeout: float = 10.0) -> str:
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = net.run_in(net.client_ns, argv, timeout=10).stdout
        if needle in text:
            return text
        time.sleep(0.2)
    return text


def test_slaac_and_rdnss_from_dnsmasq_ra(v6net: V6Net) -> None:
    net = v6net
    net.start_dnsmasq(f"--dhcp-range={net.prefix}:,ra-only")
    out = _client(net, want=False)
    ra = out["ra"]
    assert isinstance(ra, dict), out["stderr"]
    assert ra["M"] is False and f"{net.prefix}:1" in ra["rdnss"], ra
    assert f"{net.prefix}:/64" in ra["prefixes"] and ra["lifetime"] > 0
    assert out["mode"] == "slaac" and out["lease"] is None
    addrs = _wait_for(net, ["ip", "-6", "addr", "show", "dev", net.client_if], net.prefix + ":")
    assert "dynamic" in addrs and net.prefix in addrs, addrs  # kernel SLAAC
    route = _wait_for(net, ["ip", "-6", "route", "show", "default"], "default")
    assert "proto ra" in route and net.client_if in route, route
    resolv = (net.tmp / "resolv.conf").read_text()
    assert "nameserver 192.0.2.53" in resolv and f"nameserver {net.prefix}:1" in resolv, resolv


def test_dhcpv6_stateful_and_renew(v6net: V6Net) -> None:
    net = v6net
    net.start_dnsmasq(
        f"--dhcp-range={net.prefix}:100,{net.prefix}:1ff,64,2m",
        "--dhcp-option=option6:domain-search,v6.example",
    )
    out = _client(net, want=False, renew_after=2.0, renews=1)
    ra = out["ra"]
    assert isinstance(ra, dict) and ra["M"] is True, out["stderr"]
    lease = out["lease"]
    assert out["mode"] == "stateful" and isinstance(lease, dict), cast(str, out["stderr"])[-3000:]
    addr = str(lease["address"])
    assert addr.startswith(net.prefix + ":1") and lease["dns"] == [f"{net.prefix}:1"]
    log = net.dnsmasq_log()
    assert "DHCPSOLICIT" in log and "DHCPREQUEST" in log and "DHCPREPLY" in log, log[-3000:]
    assert "DHCPRENEW" in log and log.count("DHCPREPLY") >= 2, log[-3000:]
    assert cast(int, out["renewed"]) >= 1  # a count in the client's JSON
    shown = net.run_in(net.client_ns, ["ip", "-6", "addr", "show", "dev", net.client_if], 10)
    assert f"{addr}/128" in shown.stdout, shown.stdout
    saved = json.loads((net.tmp / f"lease6-{net.client_if}.json").read_text())
    assert saved["address"] == addr
    resolv = (net.tmp / "resolv.conf").read_text()
    assert f"nameserver {net.prefix}:1" in resolv and "v6.example" in resolv, resolv
