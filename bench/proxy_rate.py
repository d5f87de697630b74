"""Proxy rate and latency: mosnet's ARP/NDP proxy against the kernel's, at rising rates.

Two namespaces joined by a veth (``bp7-p-*`` holds the proxy, ``bp7-q-*`` the
peer; 10.231.7.0/24 and fd00:231:7::/64 only). A small C program in the peer
(``native/flood.c``, compiled at bench time into ``.cache/bench``) sends ARP
requests or Neighbor Solicitations for one proxied address at a fixed pace,
each from a different sender MAC, and stamps each request and its answer with
CLOCK_MONOTONIC on one AF_PACKET socket. A step is one rate for at most
``STEP_S`` seconds; per step: sent, answered, loss, replies/s, p50/p99.

Who answers in the proxy namespace, one at a time:

* ``kernel``: the reference, ``proxy_arp=1`` with a route for the address
  through another device, ``proxy_ndp=1`` with ``ip -6 neigh add proxy``,
  both with ``proxy_delay=0`` (answer at once);
* ``kernel-delay``: the same with the kernel's default ``proxy_delay``
  (0.8 s: broadcast and multicast requests are queued, at most ``proxy_qlen``
  = 64 of them, and answered after a random delay); a few rates, for scale;
* ``mosnet``: ``mosnet.proxyproc.child_main``, the proxy process as the
  daemon forks it (announcements, the NDP relay thread, ``proxyd.run``),
  with the rate limits lifted; the target ratio uses this one;
* ``mosnet-loop``: ``proxyd.run`` alone (no relay thread), limits lifted:
  shows what the relay thread costs;
* ``mosnet-policy``: ``child_main`` unchanged, default limits (per requester
  5/s burst 20, global 100/s burst 200): the cap is the policy, measured
  with one requester MAC and with a new requester MAC per request.

The only change made to what the daemon runs is the limits:
``proxyd.run`` is wrapped with ``functools.partial(limits=...)`` in the
subprocess before ``child_main`` calls it.

usage: .venv/bin/python bench/proxy_rate.py [--runs N] [--profile DIR]   (as root)
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import netlab, pngchart, stats  # noqa: E402

TOP = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PY = str(TOP / ".venv" / "bin" / "python") if (TOP / ".venv").exists() else sys.executable
CACHE = TOP / ".cache" / "bench"
KEY = "proxy_rate"

RATES = (1000, 2000, 5000, 10000, 20000, 50000, 100000)
DELAY_RATES = (1000, 10000)  # kernel with its default proxy_delay
POLICY_RATES = (1000,)  # mosnet with its default limits
STEP_S = 2.0  # each step sends rate x STEP_S requests, never for longer
POLICY_S = 3.0
SETTLE_MS = 300.0  # listen this long after the last request
DELAY_SETTLE_MS = 1500.0  # proxy_delay 0.8 s: answers come that late
PAUSE_S = 0.3  # between steps: queues drain
MAX_ROUNDS = 3  # rounds = min(--runs, MAX_ROUNDS): a round is ~3 minutes
MAX_LOSS_PCT = 1.0  # "sustained" = the highest step under this loss
SHORT_FLOOD = 0.9  # a step whose flooder sent less than this share is flagged
TARGET_RATIO = 0.5  # mosnet's sustained rate >= 0.5 x the kernel's
TARGET_P99_MS = 2.0
TARGET_P99_RATE = 10000
FAMILIES = ("arp", "ns")

NET4, NET6 = "10.231.7", "fd00:231:7:"
PROXY_MAC, PEER_MAC = "02:b7:00:07:00:01", "02:b7:00:07:00:02"
ADDR4, ADDR6 = f"{NET4}.10", f"{NET6}:10"  # the proxied addresses
PEER4, PEER6 = f"{NET4}.2", f"{NET6}:2"  # the requests' sender address
# mosnet.proxyd.Limits() defaults, for the policy's expected cap
DEFAULT_LIMITS = {"per_rate": 5.0, "per_burst": 20.0, "global_rate": 100.0, "global_burst": 200.0}

PROXY = textwrap.dedent("""
    import cProfile, functools, logging, signal, sys, time
    from ipaddress import ip_address
    from mosnet import log, netif, proxyd, proxyproc
    from mosnet.proxy import ProxyConfig
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
    from mosnet import l2, proxy, proxyd
    nat, peer = (bytes.fromhex(m.replace(":", "")) for m in sys.argv[1:3])
    v4, v6, src4, src6 = map(ip_address, sys.argv[3:7])
    cfg = proxy.ProxyConfig(nat, frozenset([v4]), frozenset([v6]), frozenset())
    frames = {"arp": l2.arp_request(peer, src4, v4).frame(), "ns": l2.ns_frame(peer, src6, v6)}
    lim = proxyd.RateLimiter(proxyd.Limits(1e9, 1e9, 1e9, 1e9), time.monotonic)
    out, n = {}, 20000
    for fam, frame in frames.items():
        assert proxy.decide(frame, cfg) is not None
        best = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n):
                proxy.decide(frame, cfg)
            best.append((time.perf_counter() - t) / n * 1e6)
        out[fam] = round(min(best), 2)
    t = time.perf_counter()
    for _ in range(n):
        lim.exhausted(); lim.allow(peer)
    out["limiter"] = round((time.perf_counter() - t) / n * 1e6, 2)
    print(json.dumps(out))
""")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    answerer: str  # "kernel" or a PROXY mode: "lifted", "loop", "default"
    rates: tuple[int, ...]
    seconds: float = STEP_S
    settle_ms: float = SETTLE_MS
    kernel_delay: bool = False  # kernel: keep the default proxy_delay
    one_requester: bool = True  # the Ethernet source stays the peer's MAC


VARIANTS = (
    Variant("kernel", "kernel, proxy_delay 0 (reference)", "kernel", RATES),
    Variant("mosnet", "mosnet proxy, limits lifted", "lifted", RATES),
    Variant("mosnet-loop", "mosnet proxyd loop alone, lifted", "loop", RATES),
    Variant("kernel-delay", "kernel, default proxy_delay", "kernel", DELAY_RATES,
            settle_ms=DELAY_SETTLE_MS, kernel_delay=True),
    Variant("policy-one", "mosnet, default limits, 1 requester", "default", POLICY_RATES,
            seconds=POLICY_S),
    Variant("policy-many", "mosnet, default limits, new MAC each", "default", POLICY_RATES,
            seconds=POLICY_S, one_requester=False),
)  # fmt: skip
REFERENCE, SUBJECT = "kernel", "mosnet"


# ---------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class Step:
    """One flood: ``count`` requests at ``rate``/s, sending for at most ``max_s``."""

    rate: int
    count: int
    max_s: float


def plan_steps(rates: Sequence[int], seconds: float, max_count: int = 1_000_000) -> list[Step]:
    """The pacing schedule: ascending rates, each ``rate x seconds`` requests (capped).

    ``max_s`` leaves 10 % slack over the nominal duration, so a flooder that
    falls behind still stops in bounded time (and sends fewer requests).
    """
    if seconds <= 0:
        raise ValueError(f"step duration {seconds} must be positive")
    steps = []
    for rate in sorted(set(rates)):
        if rate <= 0:
            raise ValueError(f"rate {rate} must be positive")
        count = max(1, min(max_count, round(rate * seconds)))
        steps.append(Step(rate, count, count / rate * 1.1))
    return steps


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ascending values: a value that occurred."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def step_figures(latencies_ns: Sequence[int], send_s: float, planned: int) -> dict[str, Any]:
    """Figures of one step from the per-request latencies (-1: no answer).

    ``replies_per_s`` is answers over the sending window (in a sustained
    regime, the offered rate times one minus the loss); latencies are over
    the answered requests only, so read them next to the loss.
    """
    sent = len(latencies_ns)
    got = sorted(x for x in latencies_ns if x >= 0)
    window = max(send_s, 1e-3)
    out: dict[str, Any] = {
        "sent": sent,
        "answered": len(got),
        "lost": sent - len(got),
        "loss_pct": round(100.0 * (sent - len(got)) / sent, 3) if sent else None,
        "offered_per_s": round(sent / window, 1) if sent > 1 else None,
        "replies_per_s": round(len(got) / window, 1) if sent > 1 else None,
        "short": sent < SHORT_FLOOD * planned,
    }
    if got:
        out["p50_ms"] = round(percentile(got, 50) / 1e6, 4)
        out["p99_ms"] = round(percentile(got, 99) / 1e6, 4)
        out["max_ms"] = round(got[-1] / 1e6, 4)
    return out


def cpu_figures(cpu_s: float, wall_s: float, answered: int) -> dict[str, float]:
    """mosnet's CPU over a step: cores busy on average, and CPU time per answer."""
    out: dict[str, float] = {}
    if wall_s > 0:
        out["mosnet_cores"] = round(cpu_s / wall_s, 3)
    if answered > 0:
        out["mosnet_cpu_us_per_answer"] = round(cpu_s / answered * 1e6, 1)
    return out


def sustained(steps: dict[int, dict[str, Any]], max_loss_pct: float = MAX_LOSS_PCT) -> int | None:
    """The highest rate whose step lost under ``max_loss_pct`` (a short flood does not count)."""
    good = [
        rate
        for rate, s in steps.items()
        if s.get("loss_pct") is not None and s["loss_pct"] < max_loss_pct and not s.get("short")
    ]
    return max(good, default=None)


def loss_below(steps: dict[int, dict[str, Any]], rate: float) -> int:
    """Requests lost in all steps at or below ``rate``: the target wants none."""
    return sum(int(s.get("lost", 0)) for r, s in steps.items() if r <= rate)


def median_steps(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-round figures of one step -> the median of each figure, plus the total loss."""
    keys = ("loss_pct", "offered_per_s", "replies_per_s", "p50_ms", "p99_ms", "max_ms")
    out: dict[str, Any] = {"rounds": len(rounds)}
    for k in keys:
        vals = [float(r[k]) for r in rounds if r.get(k) is not None]
        if vals:
            out[k] = round(stats.median(vals), 4)
    for k in ("sent", "answered", "lost"):
        out[k] = sum(int(r.get(k, 0)) for r in rounds)
    out["short"] = any(r.get("short") for r in rounds)
    for k in ("mosnet_cores", "mosnet_cpu_us_per_answer"):
        vals = [float(r[k]) for r in rounds if r.get(k) is not None]
        if vals:
            out[k] = round(stats.median(vals), 2)
    return out


def policy_cap(seconds: float, one_requester: bool, limits: dict[str, float]) -> float:
    """Most answers the default limits allow in ``seconds`` from a full bucket."""
    glob = limits["global_burst"] + limits["global_rate"] * seconds
    if not one_requester:
        return glob
    return min(glob, limits["per_burst"] + limits["per_rate"] * seconds)


# ---------------------------------------------------------------- the lab


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
        src = HERE / "native" / "flood.c"
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


def proc_cpu_s(stat: str, hz: int = 100) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (all threads)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz


def _run_variant(lab: ProxyLab, v: Variant, log: Callable[[str], None]) -> dict[str, Any]:
    """All families and rates of one variant: {family: {rate: figures}}.

    mosnet starts afresh for each family: the limiter's buckets (the policy
    runs) must not carry over from the other family's flood.
    """
    out: dict[str, Any] = {}
    for fam in FAMILIES:
        out[fam] = {}
        if v.answerer == "kernel":
            lab.kernel(True, delay=v.kernel_delay)
        else:
            lab.kernel(False)
            lab.start_mosnet(v.answerer, f"{v.key}-{fam}")
        try:
            for step in plan_steps(v.rates, v.seconds):
                fig = lab.flood_step(fam, step, v.settle_ms, v.one_requester)
                out[fam][step.rate] = fig
                log(f"    {v.key} {fam} {step.rate}/s: {_brief(fig)}")
                time.sleep(PAUSE_S)
        finally:
            if v.answerer == "kernel":
                lab.kernel(False)
            else:
                out.setdefault("counters", {})[fam] = lab.stop_mosnet()
    return out


def _brief(f: dict[str, Any]) -> str:
    lat = f"p50 {f['p50_ms']:.3f} p99 {f['p99_ms']:.3f} ms" if "p50_ms" in f else "no answer"
    short = ", flooder short" if f.get("short") else ""
    return (f"{f['answered']}/{f['sent']} answered, loss {f['loss_pct']:.2f} %, "
            f"{f['replies_per_s'] or 0:.0f}/s, {lat}{short}")  # fmt: skip


def run(
    runs: int, log: Callable[[str], None] = print, profile: Path | None = None
) -> dict[str, Any]:
    """min(runs, MAX_ROUNDS) rounds; the variants rotate each round."""
    if os.geteuid() != 0:
        raise RuntimeError("the proxy bench needs root (network namespaces)")
    if shutil.which("gcc") is None or shutil.which("nsenter") is None:
        raise RuntimeError("the proxy bench needs gcc and nsenter")
    rounds = max(1, min(runs, MAX_ROUNDS))
    work = Path(tempfile.mkdtemp(prefix="bp7-proxy-"))
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    lab = ProxyLab(work, log, profile)
    raw: dict[str, list[dict[str, Any]]] = {v.key: [] for v in VARIANTS}
    try:
        lab.setup()
        for i in range(rounds):
            k = i % len(VARIANTS)
            for v in VARIANTS[k:] + VARIANTS[:k]:
                log(f"  round {i + 1}/{rounds}: {v.label}")
                raw[v.key].append(_run_variant(lab, v, log))
        delays = dict(lab.default_delay)
        decide_us = lab.decide_cost()
        log(f"  proxy.decide in pure Python (us per call): {decide_us}")
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    section = summarize(raw, rounds, delays)
    section["decide_us"] = decide_us
    return section


def summarize(
    raw: dict[str, list[dict[str, Any]]], rounds: int, default_delay: dict[str, str]
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for v in VARIANTS:
        per_round = raw.get(v.key, [])
        entry: dict[str, Any] = {"label": v.label, "families": {}}
        for fam in FAMILIES:
            steps: dict[int, dict[str, Any]] = {}
            for rate in sorted({r for rr in per_round for r in rr.get(fam, {})}):
                figs = [rr[fam][rate] for rr in per_round if rate in rr.get(fam, {})]
                steps[rate] = median_steps(figs)
            fam_entry: dict[str, Any] = {"steps": {str(r): s for r, s in steps.items()}}
            fam_entry["sustained_per_s"] = sustained(steps)
            fam_entry["peak_replies_per_s"] = max(
                (s.get("replies_per_s", 0.0) for s in steps.values()), default=None
            )
            entry["families"][fam] = fam_entry
        if v.answerer == "default":
            entry["expected_cap"] = policy_cap(v.seconds, v.one_requester, DEFAULT_LIMITS)
            entry["seconds"] = v.seconds
        counters = [rr["counters"] for rr in per_round if rr.get("counters")]
        if counters:
            entry["proxy_counters"] = counters
        variants[v.key] = entry
    section: dict[str, Any] = {
        "machine": stats.machine(),
        "runs": rounds,
        "step_s": STEP_S,
        "rates": list(RATES),
        "max_loss_pct": MAX_LOSS_PCT,
        "kernel_default_proxy_delay_user_hz": default_delay,
        "default_limits": DEFAULT_LIMITS,
        "targets": {"ratio": TARGET_RATIO, "p99_ms": TARGET_P99_MS, "p99_at": TARGET_P99_RATE},
        "variants": variants,
        "verdict": verdicts(variants),
    }
    return section


def verdicts(variants: dict[str, Any]) -> dict[str, Any]:
    """The targets, per family: mosnet (lifted) against the kernel (proxy_delay 0)."""
    out: dict[str, Any] = {}
    ref, sub = variants.get(REFERENCE), variants.get(SUBJECT)
    if not ref or not sub:
        return out
    for fam in FAMILIES:
        k = ref["families"].get(fam, {})
        m = sub["families"].get(fam, {})
        ks, ms = k.get("sustained_per_s"), m.get("sustained_per_s")
        steps = {int(r): s for r, s in m.get("steps", {}).items()}
        v: dict[str, Any] = {"kernel_sustained": ks, "mosnet_sustained": ms}
        top = max((int(r) for r in k.get("steps", {})), default=None)
        v["kernel_at_top_step"] = ks is not None and ks == top
        if ks:
            r = stats.ratio(ms or 0, ks)
            v["ratio"] = round(r, 3)
            v["ratio_ok"] = r >= TARGET_RATIO
            v["lost_below_half_kernel"] = loss_below(steps, TARGET_RATIO * ks)
        at = steps.get(TARGET_P99_RATE, {})
        if "p99_ms" in at:
            v["p99_ms_at_10k"] = at["p99_ms"]
            v["loss_pct_at_10k"] = at.get("loss_pct")
            v["p99_ok"] = at["p99_ms"] <= TARGET_P99_MS and at.get("loss_pct", 100) < MAX_LOSS_PCT
        out[fam] = v
    return out


# ------------------------------------------------------------------- report


def report(section: dict[str, Any]) -> str:
    variants: dict[str, Any] = section.get("variants", {})
    out = [f"proxy rate: a peer floods ARP requests / NS for one address "
           f"({section.get('runs')} round(s), median per step)"]  # fmt: skip
    for fam in FAMILIES:
        rows = []
        for key, v in variants.items():
            steps = v.get("families", {}).get(fam, {}).get("steps", {})
            for rate, s in steps.items():
                rows.append([
                    v.get("label", key) if rate == next(iter(steps)) else "",
                    f"{rate} (short)" if s.get("short") else int(rate), s.get("offered_per_s"),
                    s.get("sent"), s.get("lost"), _pct(s.get("loss_pct")), s.get("replies_per_s"),
                    _ms(s.get("p50_ms")), _ms(s.get("p99_ms")), s.get("mosnet_cores"),
                    s.get("mosnet_cpu_us_per_answer"),
                ])  # fmt: skip
        name = "ARP (IPv4)" if fam == "arp" else "NS (IPv6)"
        out += ["", name, stats.table(
            ["answered by", "rate/s", "offered/s", "sent", "lost", "loss", "replies/s",
             "p50 ms", "p99 ms", "cores", "cpu us/answer"], rows)]  # fmt: skip
    out += [
        "",
        "sustained = highest step with < 1 % loss (median of the rounds); (short): the "
        "flooder sent < 90 % of the plan; cores, cpu us/answer: mosnet's CPU time (all "
        "threads) per second of the step and per answer",
    ]
    for fam, v in section.get("verdict", {}).items():
        ks, ms = v.get("kernel_sustained"), v.get("mosnet_sustained")
        top = " (the top step: the kernel lost nothing the flooder offered)" \
            if v.get("kernel_at_top_step") else ""  # fmt: skip
        ratio = v.get("ratio")
        line = (f"{fam}: mosnet {ms}/s vs kernel {ks}/s{top}: ratio "
                f"{'-' if ratio is None else f'{ratio:.3f}'} (target >= {TARGET_RATIO:g}: "
                f"{'meets' if v.get('ratio_ok') else 'misses'})")  # fmt: skip
        if "lost_below_half_kernel" in v:
            line += f", lost below {TARGET_RATIO:g}x kernel: {v['lost_below_half_kernel']}"
        if "p99_ms_at_10k" in v:
            line += (f"; p99 at 10k/s {v['p99_ms_at_10k']:.3f} ms, loss "
                     f"{v['loss_pct_at_10k']:.2f} % (target <= {TARGET_P99_MS:g} ms: "
                     f"{'meets' if v.get('p99_ok') else 'misses'})")  # fmt: skip
        out.append(line)
    for v in variants.values():
        if "expected_cap" in v:
            got = [v["families"][f]["steps"] for f in FAMILIES if f in v["families"]]
            answered = [max((s["answered"] / max(s["rounds"], 1)) for s in g.values())
                        for g in got if g]  # fmt: skip
            out.append(f"policy {v['label']}: answered {', '.join(f'{a:.0f}' for a in answered)}"
                       f" (arp, ns) in {v['seconds']:g} s; limits allow <= "
                       f"{v['expected_cap']:.0f}")  # fmt: skip
    for v in variants.values():
        first = (v.get("proxy_counters") or [{}])[0]
        if first:
            text = "; ".join(f"{fam}: {line}" for fam, line in first.items())
            out.append(f"proxy counters, {v['label']} (round 1, all steps): {text}")
    dec = section.get("decide_us", {})
    if dec:
        out.append(f"pure-Python work per frame, no sockets: proxy.decide ARP {dec.get('arp')} us, "
                   f"NS {dec.get('ns')} us; rate limiter {dec.get('limiter')} us")  # fmt: skip
    delay = section.get("kernel_default_proxy_delay_user_hz", {})
    if delay:
        out.append(f"kernel default proxy_delay: {delay} (1/100 s)")
    return "\n".join(out)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.2f}%"


def _ms(v: float | None) -> str | None:
    return None if v is None else f"{v:.3f}"


def panels(section: dict[str, Any]) -> list[pngchart.Panel]:
    variants: dict[str, Any] = section.get("variants", {})
    out = []
    for fam in FAMILIES:
        bars = []
        for i, key in enumerate((REFERENCE, SUBJECT, "mosnet-loop")):
            v = variants.get(key, {}).get("families", {}).get(fam)
            if not v:
                continue
            ks = v.get("sustained_per_s")
            bars.append(pngchart.Bar(f"{key} sustained", (ks or 0) / 1000,
                                     color=pngchart.PALETTE[i], note="k/s"))  # fmt: skip
        ref = variants.get(REFERENCE, {}).get("families", {}).get(fam, {}).get("sustained_per_s")
        name = "ARP" if fam == "arp" else "NS"
        out.append(pngchart.Panel(
            f"Proxy {name}: sustained rate, < 1 % loss", bars, unit="k req/s",
            target=ref / 1000 * TARGET_RATIO if ref else None,
            target_label=f"{TARGET_RATIO:g}x kernel", digits=0))  # fmt: skip
    bars = []
    for fam in FAMILIES:
        for i, key in enumerate((REFERENCE, SUBJECT)):
            s = variants.get(key, {}).get("families", {}).get(fam, {}).get("steps", {})
            at = s.get(str(TARGET_P99_RATE), {})
            if "p99_ms" in at:
                bars.append(pngchart.Bar(f"{fam} {key} p99 at 10k/s", at["p99_ms"],
                                         color=pngchart.PALETTE[i]))  # fmt: skip
    if bars:
        out.append(pngchart.Panel("Proxy reply latency p99 at 10k req/s", bars,
                                  target=TARGET_P99_MS, target_label="2 ms target",
                                  digits=2))  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=MAX_ROUNDS)
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    p.add_argument(
        "--profile", type=Path, help="cProfile each mosnet proxy into DIR/<variant>.prof"
    )
    args = p.parse_args(argv)
    section = run(args.runs, profile=args.profile)
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
