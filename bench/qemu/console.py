"""QEMU boot, console: a guest's serial console -> the boot's figures (pure, no QEMU).

The marker of the real init is Debian's TOMOYO line at the first
``execve("/sbin/init")``: it carries the kernel's own timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import stats

NET = "10.231.7"
REAL_INIT = r"Not activating Mandatory Access Control as \S+ does not exist"
RUN_INIT = r"Run (\S+) as init process"
UNPACK_START = r"Trying to unpack rootfs image as initramfs"
UNPACK_END = r"Freeing initrd memory"
MOSNET_START = r"mosnet: mosnet-init starting"
MOSNET_TIMINGS = r"mosnet: boot timings: (.*)"
REPORT_DONE = r"^ROOT: --- routes"
_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
_TIMING = re.compile(r"([\w-]+(?: [\w-]+)*?) (\d+(?:\.\d+)?) ms")

# mosnet's phases in boot order: python = Run /init -> "mosnet-init starting";
# then its own "boot timings:" (setup .. daemon); switch_root = that line ->
# the real init's exec; "other" = what the two ends leave (log lines, gaps).
MOSNET_PHASES = (
    "python", "setup", "drivers", "network", "firewall", "root", "daemon", "switch_root",
)  # fmt: skip


@dataclass
class RunResult:
    ok: bool
    real_init_s: float | None = None
    run_init_s: float | None = None
    unpack_s: float | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""


def console_lines(text: str) -> list[tuple[float | None, str]]:
    """Serial console text -> (kernel timestamp in s or None, message) per line."""
    out: list[tuple[float | None, str]] = []
    for raw in text.replace("\r", "").split("\n"):
        m = _STAMP.match(raw)
        out.append((float(m.group(1)), m.group(2)) if m else (None, raw))
    return out


def stamp_of(lines: Sequence[tuple[float | None, str]], pattern: str) -> float | None:
    """Kernel timestamp of the first timestamped line matching ``pattern``."""
    rx = re.compile(pattern)
    return next((t for t, msg in lines if t is not None and rx.search(msg)), None)


def parse_boot_timings(text: str) -> dict[str, float]:
    """``setup 163 ms, drivers 5066 ms`` -> {"setup": 163.0, "drivers": 5066.0}."""
    return {m.group(1): float(m.group(2)) for m in _TIMING.finditer(text)}


def has_lease(text: str, net: str = NET) -> bool:
    """The test root's report shows an IPv4 address of ``net``."""
    return any(line.startswith("ROOT:") and f"inet {net}." in line for line in text.splitlines())


def analyse(text: str, mosnet: bool, net: str = NET) -> RunResult:
    """One boot's console -> the figures, or why the run does not count."""
    lines = console_lines(text)
    real = stamp_of(lines, REAL_INIT)
    run_init = stamp_of(lines, RUN_INIT)
    if real is None or run_init is None:
        tail = " | ".join(m for _, m in lines if m.strip())
        return RunResult(False, error=f"real init not reached: ...{tail[-160:]}")
    if not has_lease(text, net):
        return RunResult(False, error="real init reached without an IPv4 lease")
    start, end = stamp_of(lines, UNPACK_START), stamp_of(lines, UNPACK_END)
    unpack = end - start if start is not None and end is not None else None
    res = RunResult(True, real, run_init, unpack)
    if mosnet:
        res.phases_ms = mosnet_phases(lines, run_init, real)
    return res


def mosnet_phases(
    lines: Sequence[tuple[float | None, str]], run_init: float, real: float
) -> dict[str, float]:
    """python, mosnet's own timings, switch_root and the rest, in ms (see MOSNET_PHASES)."""
    started = stamp_of(lines, MOSNET_START)
    rx = re.compile(MOSNET_TIMINGS)
    hit = next(((t, m) for t, msg in lines if t is not None and (m := rx.search(msg))), None)
    if started is None or hit is None:
        return {}
    t_line, match = hit
    own = parse_boot_timings(match.group(1))
    out: dict[str, float] = {"python": (started - run_init) * 1000}
    out.update({k: v for k, v in own.items() if k in MOSNET_PHASES})
    out["switch_root"] = (real - t_line) * 1000
    out["other"] = (real - run_init) * 1000 - sum(out.values())
    return out


def _summary(values: Sequence[float | None]) -> dict[str, Any] | None:
    vals = [v for v in values if v is not None]
    return stats.summarize(vals).to_json(3) if vals else None


def summarize_variant(runs: Sequence[RunResult]) -> dict[str, Any]:
    good = [r for r in runs if r.ok and r.real_init_s is not None]
    out: dict[str, Any] = {
        "runs": len(runs),
        "failures": len(runs) - len(good),
        "errors": sorted({r.error for r in runs if r.error})[:5],
    }
    if not good:
        return out
    out["real_init_s"] = _summary([r.real_init_s for r in good])
    out["kernel_s"] = _summary([r.run_init_s for r in good])
    out["initramfs_s"] = _summary(
        [r.real_init_s - r.run_init_s for r in good if r.real_init_s and r.run_init_s]
    )
    out["unpack_s"] = _summary([r.unpack_s for r in good])
    out["samples_s"] = [round(r.real_init_s, 3) for r in good if r.real_init_s is not None]
    names = [n for n in (*MOSNET_PHASES, "other") if any(n in r.phases_ms for r in good)]
    if names:
        out["phases_ms"] = {
            n: stats.summarize([r.phases_ms[n] for r in good if n in r.phases_ms]).to_json()
            for n in names
        }
    return out


def ratios(variants: dict[str, Any], field_: str, ref: str = "busybox") -> dict[str, float]:
    base = (variants.get(ref) or {}).get(field_)
    if not base:
        return {}
    return {
        k: round(stats.ratio(v[field_]["median"], base["median"]), 2)
        for k, v in variants.items()
        if k != ref and v.get(field_)
    }


def parse_maps(text: str) -> list[str]:
    """``BQ7-MAP <path>`` lines of the console -> the mapped paths, sorted, once each."""
    return sorted({ln.split(None, 1)[1].strip() for ln in text.splitlines()
                   if ln.startswith("BQ7-MAP ") and len(ln.split()) >= 2})  # fmt: skip
