"""bench/buildtime/timing.py: step parsing, summary ratios and the report."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from bench.buildtime import timing

BUILD_OUT = """\x1b[1m== pip install -e .[dev]\x1b[0m (0s)
\x1b[1m== kernel package\x1b[0m (41s)
\x1b[1m== pre-init (static C)\x1b[0m (43s)
\x1b[1m== Nuitka standalone build of init/\x1b[0m (44s)
\x1b[1m== initramfs (zstd)\x1b[0m (230s)
\x1b[1m== OVS add-on (zstd)\x1b[0m (262s)
\x1b[1m== done: out/mosnet-initramfs.img out/vmlinuz\x1b[0m (286s)
"""


def test_phases_are_the_gaps_between_build_steps() -> None:
    got = timing.phases(BUILD_OUT)
    assert got == {
        "pip install -e .[dev]": 41.0,
        "kernel package": 2.0,
        "pre-init": 1.0,
        "Nuitka standalone build of init/": 186.0,
        "initramfs": 32.0,
        "OVS add-on": 24.0,
    }
    assert sum(got.values()) == 286.0


def test_phases_of_a_warm_build_without_steps() -> None:
    assert timing.phases("== kernel package (0s)\nno steps here\n") == {}


def _measured() -> dict[str, Any]:
    return {
        "samples": {
            "cold": [300.0],
            "warm_nochange": [3.0, 4.0],
            "warm_change": [100.0, 140.0],
            "dracut": [60.0, 60.0],
        },
        "steps": {"cold": {"Nuitka standalone build of init/": 186.0}},
    }


def test_summary_ratios_against_targets_and_dracut() -> None:
    s = timing.summarize(_measured(), 2)
    assert s["target_ratio"] == {"cold": round(300 / 900, 3), "warm_change": 1.0}
    assert s["ratio_vs_dracut"]["cold"] == 5.0
    assert s["ratio_vs_dracut"]["warm_change"] == 2.0
    assert "dracut" not in s["ratio_vs_dracut"]


def test_summary_without_the_reference_has_no_ratio() -> None:
    m = _measured()
    m["samples"]["dracut"] = []
    s = timing.summarize(m, 2)
    assert s["ratio_vs_dracut"] == {}
    assert "dracut" not in s["seconds"]


def test_report_names_each_build_and_the_dominant_step() -> None:
    text = timing.report(timing.summarize(_measured(), 2))
    assert "cold (empty caches)" in text and "dracut network image (ref)" in text
    assert "meets target" in text  # cold 300 s <= 900 s; warm 120 s == target
    assert "Nuitka standalone build of init/ 186 s" in text
    assert len(timing.panels(timing.summarize(_measured(), 2))[0].bars) == 4


def test_clone_copies_downloads_but_no_build_cache(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    (top / "build.sh").write_text("#!/bin/sh\n")
    subprocess.run(["git", "-C", str(top), "add", "."], check=True)
    subprocess.run(["git", "-C", str(top), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "x"], check=True)  # fmt: skip
    for name in ("kernel", "ovs", "nuitka", "ccache"):
        (top / ".cache" / name).mkdir(parents=True)
        (top / ".cache" / name / "f").write_text(name)
    dest = tmp_path / "clone"
    timing.clone(dest, top)
    assert (dest / "build.sh").is_file()
    assert sorted(p.name for p in (dest / ".cache").iterdir()) == ["kernel", "ovs"]
