"""Native boot, figures: mosnet's phases from /dev/kmsg, the stamps, the summaries (pure).

mosnet's log lines that end a phase, in boot order; a phase whose line is
missing (a rollback, a changed message) is folded into the next one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import stats

PHASES: tuple[tuple[str, str], ...] = (
    ("imports", r"mosnet-init starting as pid 1\b"),
    ("setup", r"drivers \.\.\."),
    ("modules", r"drivers done"),
    ("discovery", r"DHCP probe: DISCOVER on"),
    ("dhcp probe", r"DHCP probe: (chose|no )"),
    ("apply", r"plan applied"),
    ("dhcp request", r"dhcp4 \S+: REQUESTING -> BOUND"),
    ("arp probe", r"dhcp4 \S+: bound "),
    ("announce", r"\S+: gratuitous ARP"),
    ("ipv6 ra", r"\S+: IPv6 "),
    ("root", r"root done"),
    ("fork", r"daemon done"),
)
SWITCH_ROOT = "switch_root"  # the last phase: until the real init's own stamp
PHASE_NAMES = tuple(name for name, _ in PHASES) + (SWITCH_ROOT,)


@dataclass
class RunResult:
    ok: bool
    total_ms: float | None = None
    phases_ms: dict[str, float | None] | None = None
    error: str = ""


def parse_kmsg(record: bytes) -> tuple[int, str] | None:
    """One /dev/kmsg record -> (timestamp in ns, message); None if not a record."""
    head, sep, rest = record.decode("utf-8", "replace").partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 3 or not fields[2].isdigit():
        return None
    return int(fields[2]) * 1000, rest.split("\n", 1)[0]


def mosnet_lines(records: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """mosnet's own lines, without the ``mosnet: `` prefix."""
    return [(t, m[len("mosnet: ") :]) for t, m in records if m.startswith("mosnet: ")]


def mosnet_phases(
    exec_ns: int, init_ns: int, lines: Sequence[tuple[int, str]]
) -> dict[str, float | None]:
    """Milliseconds per phase; ``lines`` carry times on the same clock as the stamps.

    Phases are consecutive: each ends at the first line matching its pattern
    after the previous phase's end, so the values add up to the total.
    """
    out: dict[str, float | None] = {}
    prev, i = exec_ns, 0
    for name, pattern in PHASES:
        rx = re.compile(pattern)
        hit = next((k for k in range(i, len(lines)) if rx.match(lines[k][1])), None)
        if hit is None or lines[hit][0] > init_ns:
            out[name] = None
            continue
        out[name] = (lines[hit][0] - prev) / 1e6
        prev, i = lines[hit][0], hit + 1
    out[SWITCH_ROOT] = (init_ns - prev) / 1e6
    return out


def parse_stamps(output: str) -> dict[str, int]:
    """``BN7 exec <ns>`` / ``BN7 init <ns>`` lines of the stamp program."""
    found: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "BN7" and parts[2].isdigit():
            found.setdefault(parts[1], int(parts[2]))
    return found


def summarize_variant(runs: Sequence[RunResult], with_phases: bool) -> dict[str, Any]:
    good = [r for r in runs if r.ok and r.total_ms is not None]
    out: dict[str, Any] = {
        "runs": len(runs),
        "failures": len(runs) - len(good),
        "errors": sorted({r.error for r in runs if r.error})[:5],
    }
    if not good:
        return out
    samples = [r.total_ms for r in good if r.total_ms is not None]
    out["total_ms"] = stats.summarize(samples).to_json()
    out["samples_ms"] = [round(s, 1) for s in samples]
    if with_phases:
        phases: dict[str, Any] = {}
        for name in PHASE_NAMES:
            vals = [v for r in good if r.phases_ms and (v := r.phases_ms.get(name)) is not None]
            phases[name] = stats.summarize(vals).to_json() if vals else None
        out["phases_ms"] = phases
    return out
