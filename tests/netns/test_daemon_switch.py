"""Before and after switch_root: a replaced daemon and its watcher follow PID 1 on their own.

``switch_helper.py`` is PID 1 of a private pid+mount namespace, in a fake
initramfs where nothing can be imported any more (as after the real wipe):
the daemon is SIGKILLed before the switch, its replacement (forked by the
watcher in the initramfs) and the watcher must both enter the new root when
PID 1 hands over; killed again in the real root, the daemon and then the
watcher are replaced there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("switch_helper.py")
TOP = Path(__file__).resolve().parents[2]


def test_replacements_follow_pid1_into_the_real_root(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("needs root and unshare (util-linux)")
    proc = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount", "--mount-proc",
         sys.executable, str(HELPER), str(TOP), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before_switch"] and out["followed"], out["log"]
    assert out["after_switch"] and out["alive"], out["log"]
    assert "daemon now runs in the real root" in out["log"]
    assert "watcher now runs in the real root" in out["log"]
    assert "Traceback" not in out["log"], out["log"]  # nothing imported lazily
