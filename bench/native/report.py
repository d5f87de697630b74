"""Native boot, report: the text tables and the chart panels of a results section."""

from __future__ import annotations

from typing import Any

from bench.common import chart, stats
from bench.native.phases import PHASE_NAMES

TARGET_RATIO = 3.0


def median_total(section: dict[str, Any], key: str) -> float | None:
    """The median total (ms) of variant ``key``, if it has one."""
    total = section.get("variants", {}).get(key, {}).get("total_ms")
    return float(total["median"]) if total else None


def _verdict(ratio: float, target: float) -> str:
    return f"<= {target:g}: {stats.verdict(ratio, target)}"


def report(section: dict[str, Any]) -> str:
    variants: dict[str, Any] = section.get("variants", {})
    ratios: dict[str, float] = section.get("ratios", {})
    target = float(section.get("target_ratio", TARGET_RATIO))
    rows = []
    for key, v in variants.items():
        t = v.get("total_ms")
        if not t:
            rows.append([v.get("label", key), None, None, None, None, None, "failed", ""])
            continue
        r = ratios.get(key)
        rows.append([
            v.get("label", key), t["median"], t["p25"], t["p75"], t["min"], t["max"],
            "1 (ref)" if key == "busybox" else None if r is None else f"{r:.1f}",
            "" if r is None or key.startswith("busybox") else _verdict(r, target),
        ])  # fmt: skip
    out = [
        f"native boot: exec of the initramfs init -> exec of the real init, IPv4 lease up "
        f"({section.get('runs')} runs, ms)",
        stats.table(["", "median", "p25", "p75", "min", "max", "ratio", "target"], rows),
    ]
    same = section.get("ratios_same_check", {})
    if same:
        figures = ", ".join(
            f"{variants[k].get('label', k)} {r:.1f} ({stats.verdict(r, target)})"
            for k, r in same.items()
        )
        out.append(f"against the reference with the same 1 s ARP check (udhcpc -a): {figures}")
    out += _phase_lines(variants)
    failures = {k: v["failures"] for k, v in variants.items() if v.get("failures")}
    if failures:
        errors = [e for v in variants.values() for e in v.get("errors", [])]
        out.append(f"failed runs: {failures}; first errors: {errors[:2]}")
    return "\n".join(out)


def _phase_lines(variants: dict[str, Any]) -> list[str]:
    """The phase table of the variants that have phases, and the slowest phase."""
    phase_cols = [k for k, v in variants.items() if v.get("phases_ms")]
    if not phase_cols:
        return []
    prow = []
    for name in PHASE_NAMES:
        cells: list[object] = [name]
        for k in phase_cols:
            p = variants[k]["phases_ms"].get(name)
            cells.append(None if p is None else p["median"])
        prow.append(cells)
    totals: list[object] = ["total"] + [variants[k]["total_ms"]["median"] for k in phase_cols]
    prow.append(totals)
    out = ["", "mosnet phases (median ms; each phase ends at a log line, so they add up)"]
    out.append(stats.table(["phase"] + [variants[k]["label"] for k in phase_cols], prow))
    worst = _slowest(variants[phase_cols[0]]["phases_ms"])
    if worst:
        out.append(f"slowest phase ({variants[phase_cols[0]]['label']}): {worst}")
    return out


def _slowest(phases: dict[str, Any]) -> str:
    best = max(
        ((n, p["median"]) for n, p in phases.items() if p), key=lambda x: float(x[1]), default=None
    )
    return f"{best[0]} ({best[1]:.0f} ms)" if best else ""


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    variants: dict[str, Any] = section.get("variants", {})
    bars = []
    for key, v in variants.items():
        t = v.get("total_ms")
        if t:
            r = section.get("ratios", {}).get(key)
            note = f"\u00d7{r:.1f}" if r is not None else "reference"
            label = v.get("label", key)
            bars.append(chart.Bar(label, t["median"], t["p25"], t["p75"], note=note))
    ref = median_total(section, "busybox")
    target = float(section.get("target_ratio", TARGET_RATIO))
    out = [
        chart.Panel(
            "Native boot to the real init, median and IQR",
            bars,
            target=ref * target if ref else None,
            target_label=f"{target:g}x reference",
        )
    ]
    for key, v in variants.items():
        phases = v.get("phases_ms")
        if not phases:
            continue
        pbars = [
            chart.Bar(n, p["median"], p["p25"], p["p75"], color=chart.PALETTE[0])
            for n in PHASE_NAMES
            if (p := phases.get(n))
        ]
        out.append(chart.Panel(f"Phases: {v.get('label', key)}", pbars))
    return out
