"""Daemon footprint, figures: the guest's ``FP`` lines -> per-process and per-image figures.

Pure: nothing here boots or reads the host.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import stats

HZ = 100  # USER_HZ on x86: /proc/<pid>/stat counts 1/100 s
TARGET_RSS_MB = 40.0
TARGET_CPU_S = 0.5  # per idle minute
# process name -> (label, group); the group sums are reported too
PROCESSES: dict[str, tuple[str, str]] = {
    "mosnet-daemon": ("@mosnet-daemon", "mosnet"),
    "mosnet-proxy": ("@mosnet-proxy", "mosnet"),
    "mosnet-watch": ("@mosnet-watch", "mosnet"),
    "ovsdb-server": ("@ovsdb-server", "ovs"),
    "ovs-vswitchd": ("@ovs-vswitchd", "ovs"),
    "udhcpc": ("busybox udhcpc (reference)", "reference"),
    "sleep": ("busybox sleep (floor)", "floor"),
}
FP_LINE = re.compile(
    r"^FP (t\d) (\d+) up=([\d.]+) rss=(\d*) thr=(\d*) pss=(\d*) cmd=(.*?) stat=(\d+ \(.*\) .*)$",
    re.MULTILINE,
)
FPT_LINE = re.compile(r"^FPT (t\d) (\d+) (\d+) vcs=(\d*) stat=(\d+ \(.*\) .*)$", re.MULTILINE)


@dataclass(frozen=True)
class ProcSample:
    tag: str  # t0 or t1
    pid: int
    uptime: float
    rss_kb: int | None
    threads: int | None
    pss_kb: int | None
    cmdline: str
    cpu_ticks: int


@dataclass(frozen=True)
class ThreadSample:
    tag: str
    pid: int
    tid: int
    wakeups: int | None  # voluntary context switches: each is a sleep, so a wake-up
    cpu_ticks: int


def stat_ticks(stat: str) -> int:
    """utime + stime (all threads) of a /proc/<pid>/stat line; comm may hold spaces."""
    tail = stat.rsplit(")", 1)
    if len(tail) != 2:
        raise ValueError(f"not a /proc/<pid>/stat line: {stat[:60]!r}")
    fields = tail[1].split()
    if len(fields) < 13:
        raise ValueError(f"/proc/<pid>/stat line too short: {stat[:60]!r}")
    return int(fields[11]) + int(fields[12])


def process_name(cmdline: str) -> str | None:
    """The PROCESSES key for a command line (NULs as spaces), or None."""
    words = cmdline.split()
    if not words:
        return None
    first = words[0]
    if first.startswith("@"):
        name = first[1:]
        return name if name in PROCESSES else None
    base = os.path.basename(first)
    if base == "udhcpc" or base == "busybox" and words[1:2] == ["udhcpc"]:
        return "udhcpc"
    if base == "sleep" and words[1:2] == ["86400"]:
        return "sleep"
    return None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_samples(console: str) -> list[ProcSample]:
    """Every ``FP`` line the guest printed."""
    out = []
    for m in FP_LINE.finditer(console.replace("\r", "")):
        tag, pid, up, rss, thr, pss, cmd, stat = m.groups()
        out.append(ProcSample(tag, int(pid), float(up), _int(rss), _int(thr), _int(pss),
                              cmd.strip(), stat_ticks(stat)))  # fmt: skip
    return out


def parse_threads(console: str) -> list[ThreadSample]:
    """Every ``FPT`` line (one per thread of a measured process)."""
    out = []
    for m in FPT_LINE.finditer(console.replace("\r", "")):
        tag, pid, tid, vcs, stat = m.groups()
        out.append(ThreadSample(tag, int(pid), int(tid), _int(vcs), stat_ticks(stat)))
    return out


def thread_figures(
    threads: Sequence[ThreadSample], pid: int, interval: float
) -> list[dict[str, Any]]:
    """CPU and wake-ups per minute of each thread of ``pid`` seen at t0 and t1."""
    at: dict[str, dict[int, ThreadSample]] = {}
    for t in threads:
        if t.pid == pid:
            at.setdefault(t.tag, {})[t.tid] = t
    out = []
    for tid in sorted(set(at.get("t0", {})) & set(at.get("t1", {}))):
        a, b = at["t0"][tid], at["t1"][tid]
        fig: dict[str, Any] = {
            "tid": tid,
            "cpu_s_per_min": round((b.cpu_ticks - a.cpu_ticks) / HZ * 60 / interval, 3),
        }
        if a.wakeups is not None and b.wakeups is not None:
            fig["wakeups_per_min"] = round((b.wakeups - a.wakeups) * 60 / interval, 1)
        out.append(fig)
    return out


def idle_figures(
    samples: Sequence[ProcSample], threads: Sequence[ThreadSample] = ()
) -> dict[str, dict[str, Any]]:
    """Per process name: memory at t1, and CPU over t0..t1 scaled to one minute.

    A process seen at t1 under another PID than at t0 (a restarted proxy) has
    no CPU figure, only ``restarted``. With ``threads``, each thread's CPU
    and wake-ups per minute too, and their sum as the process's wake-ups.
    """
    by: dict[str, dict[str, ProcSample]] = {}
    for s in samples:
        name = process_name(s.cmdline)
        if name is not None:
            by.setdefault(name, {}).setdefault(s.tag, s)  # the first of a name per tag
    out: dict[str, dict[str, Any]] = {}
    for name, tags in by.items():
        t0, t1 = tags.get("t0"), tags.get("t1")
        last = t1 or t0
        assert last is not None
        fig: dict[str, Any] = {
            "pid": last.pid,
            "rss_kb": last.rss_kb,
            "pss_kb": last.pss_kb,
            "threads": last.threads,
        }
        if t0 is not None and t1 is not None:
            fig |= _idle_change(t0, t1, threads)
        out[name] = fig
    return out


def _idle_change(t0: ProcSample, t1: ProcSample, threads: Sequence[ThreadSample]) -> dict[str, Any]:
    """CPU, wake-ups and RSS growth of one process from t0 to t1 (or ``restarted``)."""
    if t0.pid != t1.pid:
        return {"restarted": True}
    fig: dict[str, Any] = {}
    interval = t1.uptime - t0.uptime
    cpu = (t1.cpu_ticks - t0.cpu_ticks) / HZ
    fig["interval_s"] = round(interval, 2)
    fig["cpu_s"] = round(cpu, 3)
    if interval > 0:
        fig["cpu_s_per_min"] = round(cpu * 60 / interval, 3)
        detail = thread_figures(threads, t1.pid, interval)
        if detail:
            fig["threads_detail"] = detail
            wakes = [d.get("wakeups_per_min") for d in detail]
            if all(w is not None for w in wakes):
                fig["wakeups_per_min"] = round(sum(w or 0.0 for w in wakes), 1)
    if t0.rss_kb is not None and t1.rss_kb is not None:
        fig["rss_growth_kb"] = t1.rss_kb - t0.rss_kb
    return fig


def group_sums(figs: dict[str, dict[str, Any]], group: str) -> dict[str, Any] | None:
    """RSS, PSS, threads and CPU summed over the processes of ``group``."""
    members = [f for n, f in figs.items() if PROCESSES[n][1] == group]
    if not members:
        return None
    out: dict[str, Any] = {"processes": len(members)}
    for k in ("rss_kb", "pss_kb", "threads", "cpu_s_per_min", "wakeups_per_min"):
        vals = [f.get(k) for f in members]
        if all(v is not None for v in vals):
            out[k] = round(sum(float(v) for v in vals if v is not None), 3)
    return out


def tcg_factor(guest_ticks: int, host_ticks: int) -> float | None:
    """How much slower the guest ran the same busybox loop (None if unmeasurable)."""
    if guest_ticks <= 0 or host_ticks <= 0:
        return None
    return guest_ticks / host_ticks


def _median(vals: Sequence[float | None]) -> float | None:
    good = [float(v) for v in vals if v is not None]
    return round(stats.median(good), 3) if good else None


def summarize_image(boots: Sequence[dict[str, Any]], host_ticks: int) -> dict[str, Any]:
    """Medians over the boots, per process and per group, and the TCG estimate."""
    procs = _process_medians(boots)
    groups: dict[str, Any] = {}
    for g in ("mosnet", "ovs", "reference"):
        sums = [s for b in boots if (s := group_sums(b["processes"], g))]
        if sums:
            groups[g] = {k: _median([s.get(k) for s in sums])
                         for k in ("rss_kb", "pss_kb", "threads", "cpu_s_per_min",
                                   "wakeups_per_min")}  # fmt: skip
    factors = [tcg_factor(b["guest_cal_ticks"] or 0, host_ticks) for b in boots]
    factor = _median(factors)
    out: dict[str, Any] = {
        "boots": len(boots),
        "boot_s": _median([b.get("boot_s") for b in boots]),
        "processes": procs,
        "groups": groups,
        "tcg_factor": factor,
    }
    mos = groups.get("mosnet", {})
    if mos:
        out |= _mosnet_against_targets(mos, procs.get("udhcpc", {}), factor)
    builds = sorted({str(b["image_mtime"]) for b in boots if b.get("image_mtime")})
    if len(builds) > 1:
        out["image_rebuilt_during_run"] = builds
    errors = sorted({m for b in boots for m in b.get("missing", [])})
    if errors:
        out["missing"] = errors
    return out


def _process_medians(boots: Sequence[dict[str, Any]]) -> dict[str, Any]:
    procs: dict[str, Any] = {}
    names = [n for n in PROCESSES if any(n in b["processes"] for b in boots)]
    for name in names:
        figs = [b["processes"][name] for b in boots if name in b["processes"]]
        entry: dict[str, Any] = {"label": PROCESSES[name][0], "boots": len(figs)}
        for k in ("rss_kb", "pss_kb", "threads", "cpu_s", "cpu_s_per_min", "wakeups_per_min",
                  "rss_growth_kb"):  # fmt: skip
            entry[k] = _median([f.get(k) for f in figs])
        entry["threads_detail"] = [f.get("threads_detail", []) for f in figs]
        if any(f.get("restarted") for f in figs):
            entry["restarted"] = sum(1 for f in figs if f.get("restarted"))
        procs[name] = entry
    return procs


def _mosnet_against_targets(
    mos: dict[str, Any], ref: dict[str, Any], factor: float | None
) -> dict[str, Any]:
    """The daemon + proxy + watch sums: the native CPU estimate, x udhcpc, the verdicts."""
    out: dict[str, Any] = {}
    cpu = mos.get("cpu_s_per_min")
    if factor and cpu is not None:
        out["mosnet_cpu_s_per_min_native_estimate"] = round(cpu / factor, 4)
    ratios: dict[str, float] = {}
    for k in ("rss_kb", "pss_kb"):
        if mos.get(k) is not None and ref.get(k):
            ratios[k] = round(stats.ratio(mos[k], ref[k]), 1)
    out["ratio_vs_udhcpc"] = ratios
    out["verdict"] = {
        "rss_sum_ok": mos.get("rss_kb") is not None and mos["rss_kb"] / 1024 <= TARGET_RSS_MB,
        "pss_sum_ok": mos.get("pss_kb") is not None and mos["pss_kb"] / 1024 <= TARGET_RSS_MB,
        "cpu_tcg_ok": cpu is not None and cpu <= TARGET_CPU_S,
        "cpu_native_estimate_ok": out.get("mosnet_cpu_s_per_min_native_estimate", 1e9)
        <= TARGET_CPU_S,
    }
    return out
