"""A tool the machine lacks is one line naming what to install, never a traceback.

The entry points the README names run here with a PATH that has none of the
tools (QEMU, apt, dpkg-deb): each must exit non-zero with one line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qemu.boot import TOOLS

TOP = Path(__file__).resolve().parents[2]


def _run_without_tools(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH="/nonexistent", PYTHONPATH=str(TOP))
    return subprocess.run(
        [sys.executable, *argv], cwd=TOP, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["-m", "qemu.boot"], "qemu-system-x86_64 not found: apt-get install qemu-system-x86"),
        (
            ["-m", "qemu.boot", "--net", "netns"],
            "apt-get install qemu-system-x86 iproute2 dnsmasq-base",
        ),
        (["-m", "initramfs", "kernel", "linux-image-amd64"], "apt-cache not found"),
    ],
)
def test_entry_points_name_the_missing_tool(argv: list[str], says: str) -> None:
    res = _run_without_tools(*argv)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], res.stderr


def test_missing_images_are_named(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(TOP))
    argv = [sys.executable, "-m", "qemu.boot", "--kernel", str(tmp_path / "vmlinuz")]
    res = subprocess.run(argv, cwd=TOP, env=env, capture_output=True, text=True, timeout=60)
    if "not found" in res.stderr:
        pytest.skip("no QEMU on this machine: the line above is about that")
    assert res.returncode == 1 and f"{tmp_path / 'vmlinuz'}" in res.stderr
    assert "run ./build.sh" in res.stderr and "Traceback" not in res.stderr


def _debs(script: str, array: str) -> dict[str, str]:
    text = (TOP / script).read_text()
    body = re.search(rf"^{array}=\((.*?)\)$", text, re.M | re.S)
    assert body, f"{array} not in {script}"
    return dict(entry.split(":", 1) for entry in re.findall(r'"([^"]+)"', body[1]))


def test_the_demo_installs_qemu_before_it_builds() -> None:
    demo = (TOP / "qemu" / "demo.sh").read_text()
    build_line = next(ln for ln in demo.splitlines() if "build.sh" in ln and not ln.startswith("#"))
    assert "--demo-deps" in build_line
    assert demo.index("build.sh") < demo.index("qemu.boot")
    assert _debs("build.sh", "DEMO_DEBS") == {"qemu-system-x86": "/usr/bin/qemu-system-x86_64"}
    # the package named is the one that has the binary qemu.boot runs
    assert TOOLS["qemu-system-x86_64"] == "qemu-system-x86"
