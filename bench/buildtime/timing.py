"""Build time: cold and warm ``./build.sh`` wall time, dracut's build as the reference.

Every build runs in a throw-away clone of the checkout's HEAD (uncommitted
changes are not in it), so the checkout's own caches and ``out/`` are never
touched. Downloads are not build time: the clone gets a copy of
``.cache/kernel`` and ``.cache/ovs`` (the Debian packages), and pip takes
its wheels from pip's own cache.

- **cold**: an empty ``.cache/`` (but the downloads) and no ``.venv``: venv
  and pip, the static pre-init, the Nuitka build from an empty ccache, the
  image, the OVS add-on. What CI and a new user pay.
- **warm, nothing changed**: the same command again; only stamps are checked.
- **warm, code changed**: a comment appended to ``mosnet/base/log.py``: Nuitka
  recompiles (ccache keeps the unchanged C), the image and the add-on are
  packed again.
- **reference**: dracut building its network initramfs for the same kernel
  (``dracut_ref.build``, the ``drivers`` image, uncached), the build time of
  the mature tool.

Each build's phases are read off build.sh's ``== step (Ns)`` lines.

usage: .venv/bin/python bench/buildtime/timing.py [--runs N]   (as root)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.common import chart, dracut_ref, stats  # noqa: E402

KEY = "build_time"
TOP = Path(__file__).resolve().parents[2]
TARGETS = {"cold": 15 * 60.0, "warm_change": 2 * 60.0}
DOWNLOAD_CACHES = ("kernel", "ovs")
CHANGED_FILE = "mosnet/base/log.py"
BUILD_TIMEOUT = 3600
MAX_WARM_RUNS = 3
_STEP_RE = re.compile(r"^== (?P<step>.+?) \((?P<secs>\d+)s\)$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
KINDS = ("cold", "warm_nochange", "warm_change")
LABELS = {
    "cold": "cold (empty caches)",
    "warm_nochange": "warm, nothing changed",
    "warm_change": "warm, code changed",
    "dracut": "dracut network image (ref)",
}


def clone(dest: Path, top: Path = TOP) -> None:
    """A clone of HEAD with the downloaded packages but no build cache."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(top), str(dest)], check=True)
    for name in DOWNLOAD_CACHES:
        src = top / ".cache" / name
        if src.is_dir():
            shutil.copytree(src, dest / ".cache" / name, symlinks=True)


def phases(output: str) -> dict[str, float]:
    """Seconds spent in each build.sh step (a step ends where the next starts)."""
    marks: list[tuple[str, float]] = []
    for line in output.splitlines():
        m = _STEP_RE.match(_ANSI_RE.sub("", line).strip())
        if m:
            marks.append((m["step"], float(m["secs"])))
    out: dict[str, float] = {}
    for (step, start), (_, end) in zip(marks, marks[1:], strict=False):
        name = step.split(":")[0].split(" (")[0]
        out[name] = out.get(name, 0.0) + end - start
    return out


def build(tree: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``./build.sh --no-deps`` in ``tree`` and its phases."""
    start = time.monotonic()
    r = subprocess.run(["./build.sh", "--no-deps"], cwd=tree, capture_output=True, text=True,
                       timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    wall = time.monotonic() - start
    if r.returncode != 0:
        tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-3:])
        raise RuntimeError(f"build.sh failed ({r.returncode}): {tail}")
    return wall, phases(r.stdout)


def change_code(tree: Path, n: int) -> None:
    """A change Nuitka must rebuild for, and nothing else notices."""
    with open(tree / CHANGED_FILE, "a") as f:
        f.write(f"# bench/buildtime/timing.py: warm rebuild {n}\n")


def dracut_seconds(log: Callable[[str], None]) -> float | None:
    start = time.monotonic()
    try:
        dracut_ref.build("drivers", log=log, fresh=True)
    except dracut_ref.DracutUnavailable as exc:
        log(f"  dracut reference unavailable: {exc}")
        return None
    return time.monotonic() - start


def measure(runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    samples: dict[str, list[float]] = {k: [] for k in (*KINDS, "dracut")}
    steps: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mosnet-buildbench-") as tmp:
        tree = Path(tmp) / "mosnet"
        clone(tree)
        log("  cold build (several minutes)")
        wall, steps["cold"] = build(tree)
        samples["cold"].append(wall)
        for n in range(runs):
            samples["warm_nochange"].append(build(tree)[0])
            change_code(tree, n)
            wall, steps["warm_change"] = build(tree)
            samples["warm_change"].append(wall)
            log(f"  warm run {n + 1}/{runs}: {wall:.0f} s after a code change")
    for _ in range(runs):
        secs = dracut_seconds(log)
        if secs is None:
            break
        samples["dracut"].append(secs)
    return {"samples": samples, "steps": steps}


def summarize(measured: dict[str, Any], runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = measured["samples"]
    s = {k: stats.summarize(v).to_json() for k, v in samples.items() if v}
    ref = s.get("dracut", {}).get("median")
    return {
        "machine": stats.machine(),
        "runs": runs,
        "seconds": s,
        "steps": measured["steps"],
        "targets_s": TARGETS,
        "target_ratio": {k: round(s[k]["median"] / t, 3) for k, t in TARGETS.items() if k in s},
        "ratio_vs_dracut": {
            k: round(stats.ratio(v["median"], ref), 2)
            for k, v in s.items()
            if ref and k != "dracut"
        },  # fmt: skip
    }


def run(runs: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    runs = max(1, min(runs, MAX_WARM_RUNS))
    return summarize(measure(runs, log), runs)


def report(section: dict[str, Any]) -> str:
    secs: dict[str, Any] = section.get("seconds", {})
    vs_ref = section.get("ratio_vs_dracut", {})
    vs_target = section.get("target_ratio", {})
    targets = section.get("targets_s", TARGETS)
    rows = []
    for kind, label in LABELS.items():
        if kind not in secs:
            continue
        e, t = secs[kind], targets.get(kind)
        verdict = "" if t is None else stats.verdict(e["median"] / t, 1.0)
        rows.append([label, e["median"], f"{e['min']:.0f}-{e['max']:.0f}", e["n"], vs_ref.get(kind),
                     None if t is None else f"{t:.0f}", vs_target.get(kind), verdict])  # fmt: skip
    cold = section.get("steps", {}).get("cold", {})
    where = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(cold.items(), key=lambda kv: -kv[1]))
    return "\n".join([
        f"build time: ./build.sh --no-deps in a fresh clone ({section.get('runs')} warm runs, s)",
        stats.table(["build", "median", "min-max", "n", "x dracut", "target", "x target",
                     ""], rows),
        f"cold build by step: {where or '-'}",
    ])  # fmt: skip


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    secs: dict[str, Any] = section.get("seconds", {})
    bars = [chart.Bar(LABELS[k], secs[k]["median"], secs[k]["min"], secs[k]["max"],
                         color=chart.PALETTE[1] if k == "dracut" else None)
            for k in LABELS if k in secs]  # fmt: skip
    return [chart.Panel("Build wall time", bars, unit="s")] if bars else []


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=2, help=f"warm runs (at most {MAX_WARM_RUNS})")
    args = p.parse_args(argv)
    print(report(run(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
