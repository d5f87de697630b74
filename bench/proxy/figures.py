"""Proxy rate, figures: the pacing schedule, per-step figures, medians, verdicts (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import stats
from bench.proxy.variants import FAMILIES, RATES, REFERENCE, STEP_S, SUBJECT, VARIANTS

MAX_LOSS_PCT = 1.0  # "sustained" = the highest step under this loss
SHORT_FLOOD = 0.9  # a step whose flooder sent less than this share is flagged
TARGET_RATIO = 0.5  # mosnet's sustained rate >= 0.5 x the kernel's
TARGET_P99_MS = 2.0
TARGET_P99_RATE = 10000
# mosnet.proxy.proxyd.Limits() defaults, for the policy's expected cap
DEFAULT_LIMITS = {"per_rate": 5.0, "per_burst": 20.0, "global_rate": 100.0, "global_burst": 200.0}


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


def proc_cpu_s(stat: str, hz: int = 100) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (all threads)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz


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
