"""Daemon footprint, report: the text tables and the chart panel of a results section."""

from __future__ import annotations

from typing import Any

from bench.common import chart, stats
from bench.footprint.figures import TARGET_CPU_S, TARGET_RSS_MB


def _n(v: float | None) -> int | None:
    return None if v is None else round(v)


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def report(section: dict[str, Any]) -> str:
    out = [f"daemon footprint in a QEMU TCG guest, idle {section.get('idle_s')} s after "
           f"{section.get('wait_s')} s of running ({section.get('runs')} boot(s) per image, "
           "median)"]  # fmt: skip
    for img in section.get("images", {}).values():
        out += _image_lines(img)
    return "\n".join(out)


def _image_lines(img: dict[str, Any]) -> list[str]:
    """One image: the process table, per-thread detail, the targets, what went wrong."""
    procs = img.get("processes", {})
    out = ["", f"{img.get('label')} ({img.get('image', {}).get('path')}), boot to the real "
           f"root {img.get('boot_s')} s",
           stats.table(["process", "RSS MB", "PSS MB", "threads", "CPU s/idle min",
                        "wake-ups/min"], _process_rows(img))]  # fmt: skip
    for p in procs.values():
        detail = (p.get("threads_detail") or [[]])[0]
        if len(detail) > 1:
            parts = [f"{d['tid']}: {d['cpu_s_per_min']} s, {d.get('wakeups_per_min')} wake-ups"
                     for d in detail]  # fmt: skip
            out.append(f"  {p['label']} per thread (first boot, per min): " + "; ".join(parts))
    out += _target_lines(img)
    if img.get("missing"):
        out.append(f"not found in some boot: {img['missing']}")
    if img.get("image_rebuilt_during_run"):
        out.append(f"the image was rebuilt between boots: {img['image_rebuilt_during_run']}")
    return out


def _process_rows(img: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for p in img.get("processes", {}).values():
        label = p["label"] + (" (restarted)" if p.get("restarted") else "")
        rows.append([label, _mb(p.get("rss_kb")), _mb(p.get("pss_kb")), _n(p.get("threads")),
                     p.get("cpu_s_per_min"), _n(p.get("wakeups_per_min"))])  # fmt: skip
    for g, label in (("mosnet", "daemon + proxy + watch"), ("ovs", "OVS daemons")):
        s = img.get("groups", {}).get(g)
        if s:
            rows.append([f"= {label}", _mb(s.get("rss_kb")), _mb(s.get("pss_kb")),
                         _n(s.get("threads")), s.get("cpu_s_per_min"),
                         _n(s.get("wakeups_per_min"))])  # fmt: skip
    return rows


def _target_lines(img: dict[str, Any]) -> list[str]:
    """daemon + proxy + watch against the RSS and CPU targets (none if mosnet was not measured)."""
    v = img.get("verdict", {})
    mos = img.get("groups", {}).get("mosnet", {})
    ratios = img.get("ratio_vs_udhcpc", {})
    if not mos:
        return []
    rss, pss = _mb(mos.get("rss_kb")), _mb(mos.get("pss_kb"))
    est = img.get("mosnet_cpu_s_per_min_native_estimate")
    factor = img.get("tcg_factor")
    return [
        f"daemon + proxy + watch: RSS {rss} MB, PSS {pss} MB (target <= {TARGET_RSS_MB:g} MB: "
        f"RSS {'meets' if v.get('rss_sum_ok') else 'misses'}, PSS "
        f"{'meets' if v.get('pss_sum_ok') else 'misses'}); x udhcpc: RSS "
        f"{ratios.get('rss_kb')}, PSS {ratios.get('pss_kb')}",
        f"CPU {mos.get('cpu_s_per_min')} s per idle minute under TCG (target <= "
        f"{TARGET_CPU_S:g} s: {'meets' if v.get('cpu_tcg_ok') else 'misses'}); TCG runs "
        f"busybox {factor}x slower than the host, so natively ~{est} s",
    ]


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    bars = []
    for i, (key, img) in enumerate(section.get("images", {}).items()):
        procs = img.get("processes", {})
        for name in (
            "mosnet-daemon",
            "mosnet-proxy",
            "mosnet-watch",
            "ovsdb-server",
            "ovs-vswitchd",
            "udhcpc",
        ):
            p = procs.get(name)
            if p and p.get("rss_kb") is not None:
                bars.append(chart.Bar(f"{key} {name}", p["rss_kb"] / 1024,
                                         color=chart.PALETTE[i],
                                         note=f"PSS {_mb(p.get('pss_kb'))}"))  # fmt: skip
    if not bars:
        return []
    return [chart.Panel("Daemon RSS after switch_root (QEMU guest)", bars, unit="MB",
                           target=TARGET_RSS_MB, target_label=f"{TARGET_RSS_MB:g} MB",
                           digits=1)]  # fmt: skip
