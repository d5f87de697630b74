"""Wall time of ./build.sh: warm (nothing changed) and, with --cold, cold.

Cold clears the Nuitka and ccache caches (not the kernel download, which is
network time, not build time). Prints the figures and their ratio to the
targets of issue 2/7 (cold <= 15 min, warm <= 2 min on 2 cores).

usage: .venv/bin/python bench/build_time.py [--cold]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
TARGETS = {"cold": 15 * 60.0, "warm": 2 * 60.0}


def _build() -> float:
    start = time.monotonic()
    subprocess.run(["./build.sh", "--no-deps"], cwd=TOP, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cold", action="store_true", help="also measure a cold build (slow)")
    args = p.parse_args()
    results: dict[str, float] = {}
    if args.cold:
        for cache in ("nuitka", "nuitka-cache", "ccache", "preinit"):
            shutil.rmtree(TOP / ".cache" / cache, ignore_errors=True)
        results["cold"] = _build()
    else:
        _build()  # make sure the caches are filled
    results["warm"] = _build()
    print(f"{'build':<6} {'wall s':>8} {'target s':>9} {'ratio':>6}")
    for kind, secs in results.items():
        print(f"{kind:<6} {secs:8.1f} {TARGETS[kind]:9.0f} {secs / TARGETS[kind]:6.2f}")
    out = TOP / "bench" / "build_time.json"
    out.write_text(json.dumps({k: round(v, 1) for k, v in results.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
