"""PID 1 does not exit: the guard in init/__main__.py and the emergency shell's respawn.

The real ``init/__main__.py`` runs (``python -m init``) from a package
whose ``boot`` fails at import. Not as PID 1 it reports on stderr and exits
1; as PID 1 of a new pid namespace (root) it stays alive with a respawned
shell, its /dev/kmsg a bind-mounted file (the host's log stays clean).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
GUARD = REPO / "init" / "__main__.py"
HELPER = pathlib.Path(__file__).parent / "helpers" / "pid1_helper.py"
is_root = os.geteuid() == 0 and shutil.which("unshare") is not None

FAILURES = {
    "RuntimeError: planted import failure": "raise RuntimeError('planted import failure')\n",
    "ModuleNotFoundError: No module named 'mosnet_gone'": "import mosnet_gone\n",
    "MemoryError: ": "raise MemoryError\n",
    "SystemExit: 0": "raise SystemExit(0)\n",
    "KeyboardInterrupt: ": "raise KeyboardInterrupt\n",
}


def planted(tmp_path: pathlib.Path, boot_source: str) -> pathlib.Path:
    """A package ``init`` with the real __main__.py and the given boot.py."""
    pkg = tmp_path / "pkg" / "init"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").symlink_to(GUARD)
    (pkg / "boot.py").write_text(boot_source)
    return pkg.parent


def run_by_hand(pkg: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "init"], env=dict(os.environ, PYTHONPATH=str(pkg)), cwd=pkg,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("boot_source", FAILURES.values(), ids=list(FAILURES))
def test_import_failure_is_reported_and_exits_1_when_not_pid1(
    tmp_path: pathlib.Path, boot_source: str
) -> None:
    pkg = planted(tmp_path, boot_source)
    out = run_by_hand(pkg)
    what = next(k for k, v in FAILURES.items() if v == boot_source)
    assert out.returncode == 1, out
    # Not PID 1: stderr only, never the kernel log.
    assert f"mosnet-init: boot failed to start: {what}" in out.stderr
    assert f"mosnet-init:   at {pkg}/init/boot.py:1 in <module>" in out.stderr
    assert "rescue shell" not in out.stderr  # only PID 1 keeps a shell


def test_boot_main_returning_is_reported(tmp_path: pathlib.Path) -> None:
    out = run_by_hand(planted(tmp_path, "def main():\n    return None\n"))
    assert out.returncode == 1 and "mosnet-init: boot.main returned" in out.stderr


def count_in(path: pathlib.Path, text: str, want: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got = path.read_text()
        if got.count(text) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.skipif(not is_root, reason="needs root + unshare")
def test_import_failure_as_pid1_keeps_a_respawned_shell(tmp_path: pathlib.Path) -> None:
    pkg = planted(tmp_path, FAILURES["ModuleNotFoundError: No module named 'mosnet_gone'"])
    kmsg, console = tmp_path / "kmsg", tmp_path / "console"
    kmsg.touch()
    # PID 1 of a new pid namespace, its /dev/kmsg a file; stdin /dev/null, so
    # each /bin/sh reads EOF and exits at once.
    run = f"mount --bind {kmsg} /dev/kmsg && exec {sys.executable} -m init"
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", run]
    with open(console, "wb") as out:
        proc = subprocess.Popen(
            argv, env=dict(os.environ, PYTHONPATH=str(pkg)), cwd=pkg,
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        text = count_in(kmsg, "rescue shell exited", 2)
        assert proc.poll() is None, text  # PID 1 of the namespace lives on
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert "<2>mosnet-init: boot failed to start: ModuleNotFoundError" in text
    assert f"<2>mosnet-init:   at {pkg}/init/boot.py:1 in <module>" in text
    assert text.count("<2>mosnet-init: rescue shell /bin/sh on the console (pid ") >= 2
    assert "<4>mosnet-init: rescue shell exited (wait status 0x0); respawning" in text
    assert console.read_text() == ""  # kmsg took every line: no duplicates


def test_emergency_shell_respawns_ever_more_slowly(tmp_path: pathlib.Path) -> None:
    """init.pid1.emergency_shell: a shell that dies at once is started again and again,
    the delay doubling from respawn_delay (0.05 s in the helper); PID 1 never returns."""
    runs = tmp_path / "runs"
    script = tmp_path / "shell"
    script.write_text(f"#!/bin/sh\ndate +%s.%N >> {runs}\nexit 0\n")
    script.chmod(0o755)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "shell", str(script), os.ttyname(slave)],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not runs.exists() or len(runs.read_text().splitlines()) < 5:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        os.close(master)
        os.close(slave)
    times = [float(t) for t in runs.read_text().split()]
    for i, (a, b) in enumerate(zip(times, times[1:], strict=False)):
        assert b - a >= 0.05 * 2**i * 0.99, (i, times)
