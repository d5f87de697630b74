"""The one benchmark command: measure mosnet and its references side by side.

Runs the selected benchmarks, prints their tables, merges their figures
into bench/results.json (sections of benchmarks not run this time are
kept) and draws bench/results.png from every section it knows.

A benchmark reports figures; it never fails because a machine is slow.
Every target is a ratio against a reference measured in the same run.

usage: .venv/bin/python -m bench [--only native,probe] [--runs N]   (as root)
       (or .venv/bin/python bench/run.py ...)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not bench/ (bench/qemu!)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.buildtime import timing  # noqa: E402
from bench.common import chart, stats  # noqa: E402
from bench.footprint import daemon  # noqa: E402
from bench.native import boot as native  # noqa: E402
from bench.probe import nics  # noqa: E402
from bench.proxy import rate  # noqa: E402
from bench.qemu import boot as qemu  # noqa: E402
from bench.size import image  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
CHART = HERE / "results.png"


@dataclass(frozen=True)
class Bench:
    """One benchmark: its key in results.json and what it can do."""

    key: str
    run: Callable[[int], dict[str, Any]]
    report: Callable[[dict[str, Any]], str]
    panels: Callable[[dict[str, Any]], list[chart.Panel]]
    runs: int | None = None  # its own default for --runs (None: DEFAULT_RUNS)


# Short name (for --only) -> benchmark. Other benchmarks register here too.
BENCHES: dict[str, Bench] = {
    "native": Bench(native.KEY, native.run, native.report, native.panels),
    "probe": Bench(nics.KEY, nics.run, nics.report, nics.panels),
    # QEMU boots of ~3.5 min (75 s wait + an idle minute): boots per image, at most 2
    "footprint": Bench(daemon.KEY, daemon.run, daemon.report, daemon.panels, runs=daemon.MAX_BOOTS),
    # rounds of all variants and rates (~3 min each), at most 3
    "proxy": Bench(rate.KEY, rate.run, rate.report, rate.panels, runs=rate.MAX_ROUNDS),
    # full QEMU TCG boots (~45 s each for mosnet): 5 rounds unless --runs says otherwise
    "qemu": Bench(qemu.KEY, qemu.run, qemu.report, qemu.panels, runs=5),
    # --runs = guest unpack boots per compressor (at most 3)
    "size": Bench(image.KEY, image.run, image.report, image.panels, runs=3),
    # a cold build in a fresh clone (~5 min), then --runs warm builds (at most 3) and as
    # many dracut builds (~1-2 min each)
    "build": Bench(timing.KEY, timing.run, timing.report, timing.panels, runs=2),
}
DEFAULT_RUNS = 10


def load(path: Path = RESULTS) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """New sections replace old ones of the same key; all other keys stay."""
    return {**old, **new}


def save(data: dict[str, Any], path: Path = RESULTS) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def draw(data: dict[str, Any], path: Path = CHART) -> bool:
    """Draw the chart of every known section; False if there is none or no matplotlib."""
    panels: list[chart.Panel] = []
    for b in BENCHES.values():
        if isinstance(data.get(b.key), dict):
            panels += b.panels(data[b.key])
    if not panels:
        return False
    m: dict[str, Any] = next(
        (s["machine"] for s in data.values() if isinstance(s, dict) and "machine" in s), {}
    )
    title = f"mosnet bench  {m.get('date', '')}  {m.get('cores', '?')} cores  {m.get('kernel', '')}"
    try:
        png = chart.render(panels, title)
    except ImportError as exc:  # a bench-only dependency: the figures are saved already
        print(f"chart not drawn ({exc}): pip install -e '.[bench]'", file=sys.stderr)
        return False
    path.write_bytes(png)
    return True


def report_only() -> int:
    data = load()
    for b in BENCHES.values():
        if isinstance(data.get(b.key), dict):
            print(b.report(data[b.key]), end="\n\n")
    if draw(data):
        print(f"wrote {CHART.relative_to(HERE.parent)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(BENCHES), help="comma list: " + ",".join(BENCHES))
    p.add_argument("--runs", type=int, help="measured runs per case (default: 10; qemu 5, size 3, "
                   "footprint 2, proxy 3, build 2)")  # fmt: skip
    p.add_argument("--no-save", action="store_true", help="print only; leave results alone")
    p.add_argument("--report", action="store_true", help="measure nothing: print the tables "
                   "and redraw the chart from results.json")  # fmt: skip
    args = p.parse_args(argv)
    if args.report:
        return report_only()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    new: dict[str, Any] = {}
    failed = []
    for name in wanted:
        b = BENCHES[name]
        runs = args.runs if args.runs is not None else b.runs or DEFAULT_RUNS
        print(f"== {name} ({runs} runs)", flush=True)
        try:
            new[b.key] = b.run(runs)
        except Exception as exc:  # one broken bench must not lose the others' figures
            traceback.print_exc()
            failed.append(f"{name}: {exc}")
    print()
    for name in wanted:
        key = BENCHES[name].key
        if key in new:
            print(BENCHES[name].report(new[key]), end="\n\n")
    m = stats.machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, kernel {m['kernel']}")
    if new and not args.no_save:
        data = merge(load(), new)
        save(data)
        drawn = draw(data)
        print(f"wrote {RESULTS.relative_to(HERE.parent)}"
              + (f" and {CHART.relative_to(HERE.parent)}" if drawn else ""))  # fmt: skip
    for f in failed:
        print(f"benchmark did not run: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
