"""Pure helpers of the benchmarks: summaries of samples, ratios, text tables.

Nothing here touches the system, so tests/unit can check it. The machines
are noisy: figures are medians with their spread, and targets are ratios
against a reference measured in the same run, never absolute times.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def quantile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("quantile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside 0..1")
    xs = sorted(samples)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    return quantile(samples, 0.5)


@dataclass(frozen=True)
class Summary:
    """Median and spread of one measured quantity (whatever unit went in)."""

    n: int
    median: float
    p25: float
    p75: float
    min: float
    max: float

    @property
    def iqr(self) -> float:
        return self.p75 - self.p25

    @property
    def rel_spread(self) -> float:
        """Interquartile range over the median: 0.1 means +-5 % around it."""
        return self.iqr / self.median if self.median else 0.0

    def to_json(self, digits: int = 1) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(v, digits) for k, v in asdict(self).items()}
        out["n"] = self.n
        return out

    def text(self, digits: int = 0) -> str:
        """``1234 [1200-1300]``: median, then the interquartile range."""
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.median)} [{f.format(self.p25)}-{f.format(self.p75)}]"


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("no samples to summarize")
    return Summary(
        n=len(samples),
        median=median(samples),
        p25=quantile(samples, 0.25),
        p75=quantile(samples, 0.75),
        min=min(samples),
        max=max(samples),
    )


def ratio(value: float, reference: float) -> float:
    """value / reference; inf when the reference is zero (never raises)."""
    if reference == 0:
        return math.inf
    return value / reference


def verdict(value: float, target: float) -> str:
    """Whether a ratio meets its ``<= target``: reported, never asserted."""
    return "meets target" if value <= target else "misses target"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: the first column left-aligned, the others right."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, row in enumerate(cells):
        parts = [c.ljust(width[i]) if i == 0 else c.rjust(width[i]) for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in width))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def machine() -> dict[str, Any]:
    """Where and when the figures were taken (for results.json and the README)."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "loadavg": load,
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "mem_gib": round(mem_kb / 2**20, 1),
    }
