"""Proxy rate, the lab: two namespaces, the kernel's proxy or mosnet's, the flooder.

``bp7-p-*`` holds the proxy, ``bp7-q-*`` the peer, joined by a veth; a
second veth in the proxy namespace carries the routes the kernel's proxy
needs. mosnet's proxy runs as the ``PROXY`` script below, the flooder is
``bench/proxy/flood.c``.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import netlab
from bench.proxy.figures import Step, cpu_figures, proc_cpu_s, step_figures

TOP = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY = str(TOP / ".venv" / "bin" / "python") if (TOP / ".venv").exists() else sys.executable
CACHE = TOP / ".cache" / "bench"

NET4, NET6 = "10.231.7", "fd00:231:7:"
PROXY_MAC, PEER_MAC = "02:b7:00:07:00:01", "02:b7:00:07:00:02"
ADDR4, ADDR6 = f"{NET4}.10", f"{NET6}:10"  # the proxied addresses
PEER4, PEER6 = f"{NET4}.2", f"{NET6}:2"  # the requests' sender address

PROXY = textwrap.dedent("""
    import cProfile, functools, logging, signal, sys, time
    from ipaddress import ip_address
    from mosnet.base import log
    from mosnet.base import netif
    from mosnet.proxy import proxyd
    from mosnet.daemon import proxyproc
    from mosnet.proxy.answers import ProxyConfig
    log.setup(level=logging.INFO)
    nic, v4, v6, mode, profile = sys.argv[1:6]
    cfg = ProxyConfig(netif.interface_mac(nic), frozenset([ip_address(v4)]),
                      frozenset([ip_address(v6)]), frozenset())
    lifted = proxyd.Limits(per_rate=1e9, per_burst=1e9, global_rate=1e9, global_burst=1e9)
    # CPU time of the profiled (main) thread: a busy machine does not inflate it
    prof = cProfile.Profile(time.thread_time) if profile else None
    if prof:
        prof.enable()
    try:
        if mode == "loop":
            stop = []
            signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
            proxyd.run(nic, cfg, lambda: bool(stop), limits=lifted)
            code = 0
        else:
            if mode == "lifted":
                proxyd.run = functools.partial(proxyd.run, limits=lifted)
            code = proxyproc.child_main(proxyproc.ProxySpec(nic, cfg))
    finally:
        if prof:
            prof.disable()
            prof.dump_stats(profile)
    sys.exit(code)
""")


# The per-frame work of proxyd in pure Python, no sockets: the decision (decode, checks,
# the reply frame) and the rate limiter, on frames like the flooder's.
DECIDE = textwrap.dedent("""
    import json, sys, time
    from ipaddress import IPv4Address, IPv6Address, ip_address
    from mosnet.l2 import frames, nd
    from mosnet.proxy import answers
    from mosnet.proxy import proxyd
    nat, peer = (bytes.fromhex(m.replace(":", "")) for m in sys.argv[1:3])
    v4, v6, src4, src6 = map(ip_address, sys.argv[3:7])
    cfg = answers.ProxyConfig(nat, frozenset([v4]), frozenset([v6]), frozenset())
    asks = {"arp": frames.arp_request(peer, src4, v4).frame(), "ns": nd.ns_frame(peer, src6, v6)}
    lim = proxyd.RateLimiter(proxyd.Limits(1e9, 1e9, 1e9, 1e9), time.monotonic)
    out, n = {}, 20000
    for fam, frame in asks.items():
        assert answers.decide(frame, cfg) is not None
        best = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n):
                answers.decide(frame, cfg)
            best.append((time.perf_counter() - t) / n * 1e6)
        out[fam] = round(min(best), 2)
    t = time.perf_counter()
    for _ in range(n):
        lim.exhausted(); lim.allow(peer)
    out["limiter"] = round((time.perf_counter() - t) / n * 1e6, 2)
    print(json.dumps(out))
""")


def _sysctl(ns: str, key: str, value: str | None = None) -> str:
    path = Path("/proc/sys") / key.replace(".", "/")
    argv = ["ip", "netns", "exec", ns]
    if value is None:
        return subprocess.run([*argv, "cat", str(path)], check=True, capture_output=True,
                              text=True, timeout=10).stdout.strip()  # fmt: skip
    subprocess.run([*argv, "sh", "-c", f"echo {value} > {path}"], check=True,
                   capture_output=True, timeout=10)  # fmt: skip
    return value


class ProxyLab:
    """bp7-p (proxy) -- veth -- bp7-q (peer); a second veth in bp7-p carries the routes."""

    def __init__(self, workdir: Path, log: Callable[[str], None], profile: Path | None) -> None:
        self.work, self.log, self.profile = workdir, log, profile
        tag = netlab.tag()
        self.proxy_ns, self.peer_ns = f"bp7-p-{tag}", f"bp7-q-{tag}"
        self.pif, self.qif = f"bp7p{tag}", f"bp7q{tag}"
        self.xif, self.yif = f"bp7x{tag}", f"bp7y{tag}"
        self.namespaces: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.proc_log: Path | None = None
        self.flood = CACHE / "flood"
        self.default_delay: dict[str, str] = {}

    def setup(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        src = HERE / "flood.c"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(self.flood), str(src)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        p, q = self.proxy_ns, self.peer_ns
        for ns in (p, q):
            netlab.ip("netns", "add", ns)
            self.namespaces.append(ns)
            netlab.ip("-n", ns, "link", "set", "lo", "up")
        netlab.ip("-n", p, "link", "add", self.pif, "address", PROXY_MAC, "type", "veth",
                  "peer", "name", self.qif, "address", PEER_MAC, "netns", q)  # fmt: skip
        # the kernel proxies only for an address routed out of another device
        netlab.ip("-n", p, "link", "add", self.xif, "type", "veth", "peer", "name", self.yif)
        netlab.ip("-n", p, "addr", "add", f"{NET4}.1/24", "dev", self.pif)
        netlab.ip("-n", p, "addr", "add", f"{NET6}:1/64", "dev", self.pif, "nodad")
        for dev in (self.pif, self.xif, self.yif):
            netlab.ip("-n", p, "link", "set", dev, "up")
        netlab.ip("-n", q, "link", "set", self.qif, "up")
        netlab.ip("-n", p, "route", "add", f"{ADDR4}/32", "dev", self.xif)
        netlab.ip("-n", p, "-6", "route", "add", f"{ADDR6}/128", "dev", self.xif)
        netlab.ip("-n", p, "-6", "neigh", "add", "proxy", ADDR6, "dev", self.pif)
        for fam in ("ipv4", "ipv6"):
            _sysctl(p, f"net.{fam}.conf.{self.pif}.forwarding", "1")
            key = f"net.{fam}.neigh.{self.pif}.proxy_delay"
            self.default_delay[fam] = _sysctl(p, key)
        self._wait_up()

    def _wait_up(self) -> None:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            out = netlab.ip_out("-n", self.peer_ns, "link", "show", self.qif)
            if "state UP" in out or "LOWER_UP" in out and "NO-CARRIER" not in out:
                time.sleep(0.2)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.qif} never came up")

    def kernel(self, on: bool, delay: bool = False) -> None:
        p = self.proxy_ns
        _sysctl(p, f"net.ipv4.conf.{self.pif}.proxy_arp", "1" if on else "0")
        _sysctl(p, f"net.ipv6.conf.{self.pif}.proxy_ndp", "1" if on else "0")
        for fam in ("ipv4", "ipv6"):
            value = self.default_delay[fam] if delay else "0"
            _sysctl(p, f"net.{fam}.neigh.{self.pif}.proxy_delay", value)

    def start_mosnet(self, mode: str, label: str) -> None:
        self.proc_log = self.work / f"proxy-{mode}.log"
        prof = str(self.profile / f"{label}.prof") if self.profile else ""
        # ip netns exec (an exec, same PID) also mounts the namespace's /sys
        argv = ["ip", "netns", "exec", self.proxy_ns, PY, "-c", PROXY,
                self.pif, ADDR4, ADDR6, mode, prof]  # fmt: skip
        with open(self.proc_log, "wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                cwd=TOP, env=dict(os.environ, PYTHONPATH=str(TOP)),
            )  # fmt: skip
        end = time.monotonic() + 20
        while "ARP/NDP proxy for" not in self.proc_log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"mosnet proxy did not start: {self.proc_log.read_text()}")
            time.sleep(0.05)
        time.sleep(0.5)  # child_main: the relay thread, the announcements (2 x 0.2 s)

    def stop_mosnet(self) -> str:
        """Stop the proxy by PID; its last counters line."""
        if self.proc is not None:
            netlab.stop(self.proc)
            self.proc = None
        text = self.proc_log.read_text(errors="replace") if self.proc_log else ""
        lines = [ln for ln in text.splitlines() if "proxy stopped:" in ln]
        return lines[-1].split("proxy stopped:", 1)[1].strip() if lines else ""

    def cpu_s(self) -> float | None:
        if self.proc is None:
            return None
        try:
            return proc_cpu_s(Path(f"/proc/{self.proc.pid}/stat").read_text())
        except OSError:
            return None

    def flood_step(self, family: str, step: Step, settle_ms: float, fixed: bool) -> dict[str, Any]:
        out = self.work / "lat.bin"
        target, source = (ADDR4, PEER4) if family == "arp" else (ADDR6, PEER6)
        argv = ["nsenter", f"--net=/run/netns/{self.peer_ns}", str(self.flood), self.qif,
                family, target, source, str(step.rate), str(step.count), f"{step.max_s:.3f}",
                str(settle_ms), "1" if fixed else "0", str(out)]  # fmt: skip
        cpu0, t0 = self.cpu_s(), time.monotonic()
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=step.max_s + settle_ms / 1000 + 30)  # fmt: skip
        cpu1, t1 = self.cpu_s(), time.monotonic()
        if res.returncode != 0:
            raise RuntimeError(f"flooder failed: {res.stderr.strip()}")
        counters = json.loads(res.stdout.strip().splitlines()[-1])
        lat = array.array("q")
        lat.frombytes(out.read_bytes())
        fig = step_figures(lat[: int(counters["sent"])], float(counters["send_s"]), step.count)
        keys = ("duplicates", "stray", "send_errors", "max_lag_us", "rx_drops")
        fig["flooder"] = {k: counters[k] for k in keys}
        if cpu0 is not None and cpu1 is not None:
            fig.update(cpu_figures(cpu1 - cpu0, t1 - t0, fig["answered"]))
        return fig

    def decide_cost(self) -> dict[str, float]:
        """µs per ``proxy.decide`` call (ARP, NS) and per limiter check, best of 3."""
        argv = [PY, "-c", DECIDE, PROXY_MAC, PEER_MAC, ADDR4, ADDR6, PEER4, PEER6]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=TOP,
                             env=dict(os.environ, PYTHONPATH=str(TOP)))  # fmt: skip
        if res.returncode != 0:
            return {}
        out: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
        return out

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(Exception):
                netlab.stop(self.proc)
            self.proc = None
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.namespaces.clear()
