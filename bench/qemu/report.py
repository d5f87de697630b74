"""QEMU boot, report: the text tables and the chart panels of a results section."""

from __future__ import annotations

from typing import Any

from bench.common import chart, stats

TARGET_RATIO = 3.0  # the native comparison's target, shown for the same ratio


def report(section: dict[str, Any]) -> str:
    variants: dict[str, Any] = section.get("variants", {})
    out = [
        f"QEMU TCG boot: guest uptime when the real init starts ({section.get('runs')} runs, s)",
        stats.table(
            ["", "median", "p25-p75", "min-max", "kernel", "initramfs", "ratio total",
             "ratio initramfs"], _boot_rows(section)),
    ]  # fmt: skip
    mos = variants.get("mosnet", {}).get("phases_ms")
    if mos:
        out += ["", "mosnet phases (median ms; Run /init -> exec of /sbin/init)"]
        prow: list[list[object]] = [[n, p["median"], f"{p['p25']:.0f}-{p['p75']:.0f}"]
                                    for n, p in mos.items()]  # fmt: skip
        out.append(stats.table(["phase", "median", "p25-p75"], prow))
    if section.get("dracut_note"):
        out.append(section["dracut_note"])
    failures = {k: v["failures"] for k, v in variants.items() if v.get("failures")}
    if failures:
        errors = [e for v in variants.values() for e in v.get("errors", [])]
        out.append(f"failed runs: {failures}; first errors: {errors[:2]}")
    return "\n".join(out)


def _boot_rows(section: dict[str, Any]) -> list[list[object]]:
    """One row per variant: uptime at the real init, its spread, the spans and ratios."""
    variants: dict[str, Any] = section.get("variants", {})
    total_r: dict[str, float] = section.get("ratios", {})
    init_r: dict[str, float] = section.get("ratios_initramfs", {})
    target = float(section.get("target_ratio", TARGET_RATIO))
    rows: list[list[object]] = []
    for key, v in variants.items():
        t = v.get("real_init_s")
        if not t:
            rows.append([v.get("label", key), None, None, None, None, None, "failed", ""])
            continue
        k, i = v.get("kernel_s") or {}, v.get("initramfs_s") or {}
        ref = key == "busybox"
        rows.append([
            v.get("label", key), f"{t['median']:.2f}", f"{t['p25']:.2f}-{t['p75']:.2f}",
            f"{t['min']:.2f}-{t['max']:.2f}", f"{k.get('median', 0):.2f}",
            f"{i.get('median', 0):.2f}",
            "1 (ref)" if ref else _r(total_r.get(key)),
            "1 (ref)" if ref else _r(init_r.get(key), target),
        ])  # fmt: skip
    return rows


def _r(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "-"
    if target is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({'meets' if value <= target else 'misses'} <= {target:g})"


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    variants: dict[str, Any] = section.get("variants", {})
    bars = []
    for i, (key, v) in enumerate(variants.items()):
        t = v.get("real_init_s")
        if not t:
            continue
        r = section.get("ratios", {}).get(key)
        note = f"\u00d7{r:.2f}" if r is not None else "reference"
        color = chart.PALETTE[i % len(chart.PALETTE)]
        bars.append(chart.Bar(v.get("label", key), t["median"], t["p25"], t["p75"], color, note))
    out = [chart.Panel("QEMU TCG boot: uptime at the real init", bars, unit="s", digits=1)]
    initramfs = _initramfs_panel(section)
    if initramfs is not None:
        out.append(initramfs)
    mos = variants.get("mosnet", {}).get("phases_ms")
    if mos:
        pbars = [
            chart.Bar(n, p["median"], p["p25"], p["p75"], color=chart.PALETTE[1])
            for n, p in mos.items()
            if p["median"] > 0
        ]
        out.append(chart.Panel("QEMU boot phases: mosnet-init", pbars))
    return out


def _initramfs_panel(section: dict[str, Any]) -> chart.Panel | None:
    """Run /init to the real init per variant, against the target times the reference."""
    variants: dict[str, Any] = section.get("variants", {})
    ibars = []
    for i, (key, v) in enumerate(variants.items()):
        t = v.get("initramfs_s")
        if t:
            r = section.get("ratios_initramfs", {}).get(key)
            note = f"\u00d7{r:.1f}" if r is not None else "reference"
            color = chart.PALETTE[i % len(chart.PALETTE)]
            label = v.get("label", key)
            ibars.append(chart.Bar(label, t["median"], t["p25"], t["p75"], color, note))
    if not ibars:
        return None
    ref = (variants.get("busybox") or {}).get("initramfs_s")
    target = float(section.get("target_ratio", TARGET_RATIO))
    return chart.Panel(
        "QEMU boot: Run /init to the real init",
        ibars,
        unit="s",
        digits=1,
        target=ref["median"] * target if ref else None,
        target_label=f"{target:g}x reference",
    )
