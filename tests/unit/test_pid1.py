"""init.pid1 and init.procs: PID 1 survives signals, errors and orphans.

The helper runner itself (mosnet.base.children) is tested in test_children.py;
here it runs while orphans are reaped around it.

Helpers run in child processes (tests/unit/helpers/pid1_helper.py); every
one of them is killed in a ``finally`` since, by design, they never exit.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

from init import pid1

HELPER = pathlib.Path(__file__).parent / "helpers" / "pid1_helper.py"
REPO = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
is_root = os.geteuid() == 0 and shutil.which("unshare") is not None


# What a killed helper wrote, by pid: (stdout, stderr).
OUTPUT: dict[int, tuple[str, str]] = {}


@contextmanager
def helper(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        OUTPUT[proc.pid] = proc.communicate()


def reap_run(reaper: str, prefix: tuple[str, ...] = ()) -> dict[str, object]:
    out = subprocess.run(
        [*prefix, sys.executable, str(HELPER), "reap", reaper],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param((), id="subreaper"),
        pytest.param(
            ("unshare", "--pid", "--fork", "--mount-proc"),
            id="pid1-in-pidns",
            marks=pytest.mark.skipif(not is_root, reason="needs root + unshare"),
        ),
    ],
)
def test_run_keeps_exit_code_while_orphans_are_reaped(prefix: tuple[str, ...]) -> None:
    res = reap_run("procs", prefix)
    assert res["codes"] == [3] * 15
    assert res["zombies"] == []
    assert res["reaped"] == 30  # two orphans per round, all reaped by us
    if prefix:
        assert res["pid"] == 1


def test_the_checks_have_teeth() -> None:
    # A reaper that takes a Popen child's status makes Popen report 0, not 3.
    # Done deterministically; the threaded naive reaper only races sometimes.
    proc = subprocess.Popen(["/bin/sh", "-c", "exit 3"])
    os.waitpid(proc.pid, 0)  # what a blanket waitpid(-1) loop would do
    assert proc.wait() == 0
    # Without reaping, the orphans stay zombies and the zombie scan sees them.
    zombies = reap_run("none")["zombies"]
    assert isinstance(zombies, list) and len(zombies) == 30


def test_signals_do_not_kill(tmp_path: pathlib.Path) -> None:
    cad = tmp_path / "ctrl-alt-del"
    cad.write_text("1\n")
    with helper("signals", str(cad)) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        for sig in (
            signal.SIGPIPE,
            signal.SIGTERM,
            signal.SIGHUP,
            signal.SIGUSR1,
            signal.SIGUSR2,
            signal.SIGINT,
            signal.SIGQUIT,
            signal.SIGPWR,
        ):
            os.kill(proc.pid, sig)
            if sig != signal.SIGPIPE:  # ignored, so never reported
                assert proc.stdout.readline().strip() == sig.name
            assert proc.poll() is None, f"killed by {sig.name}"
        assert cad.read_text().strip() == "0"


def test_pending_signals_read_and_clear() -> None:
    old = {s: signal.getsignal(s) for s in (*pid1.RECORDED_SIGNALS, signal.SIGCHLD, signal.SIGPIPE)}
    try:
        pid1.install_signal_handlers(cad_path=None)
        pid1.pending_signals()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGINT)  # would be KeyboardInterrupt by default
        time.sleep(0.05)
        assert pid1.pending_signals() == (signal.SIGUSR1, signal.SIGINT)
        assert pid1.pending_signals() == ()
        assert pid1.reboot_requested()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), ValueError("x")])
def test_guard_returns_exceptions(exc: BaseException) -> None:
    def phase() -> int:
        raise exc

    assert pid1.guard(phase) is exc


def test_guard_returns_value() -> None:
    assert pid1.guard(lambda a, b: a + b, 2, b=3) == 5


class _Idle(Exception):
    pass


def test_halt_falls_back_to_idle() -> None:
    calls: list[int] = []

    def reboot(cmd: int) -> int:
        calls.append(cmd)
        return -1

    def idle() -> NoReturn:
        raise _Idle

    with pytest.raises(_Idle):
        pid1.halt("test", reboot=reboot, idle=idle)
    assert calls == [pid1._int32(pid1.LINUX_REBOOT_CMD_HALT)]


def test_halt_idles_forever_when_reboot_returns() -> None:
    with helper("halt-idle") as proc:
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGTERM)  # recorded, logged, ignored
        time.sleep(0.5)
        assert proc.poll() is None
    out, err = OUTPUT[proc.pid]
    assert f"REBOOT {pid1._int32(pid1.LINUX_REBOOT_CMD_HALT):#x}" in out
    assert "idling forever" in err and "received SIGTERM; ignored" in err


@pytest.mark.skipif(not is_root, reason="needs root + unshare")
def test_halt_real_reboot_in_pid_namespace() -> None:
    # reboot(HALT) by PID 1 of a pid namespace ends the namespace with SIGINT
    # instead of halting the host; proves the ctypes call and its command.
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(HELPER), "halt-real"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode in (-signal.SIGINT, 128 + signal.SIGINT), out
    assert "idling" not in out.stderr


def test_emergency_shell_respawns_with_ctty(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "runs"
    script = tmp_path / "shell"
    script.write_text(
        f"#!/bin/sh\n( : < /dev/tty ) 2>/dev/null && c=yes || c=no\n"
        f'echo "run ctty=$c" >> {log}\nexit 1\n'
    )
    script.chmod(0o755)
    master, slave = os.openpty()
    try:
        with helper("shell", str(script), os.ttyname(slave)) as proc:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if log.exists() and len(log.read_text().splitlines()) >= 3:
                    break
                time.sleep(0.05)
            assert proc.poll() is None
    finally:
        os.close(master)
        os.close(slave)
    assert log.read_text().splitlines()[:3] == ["run ctty=yes"] * 3
    assert "emergency shell exited; respawning" in OUTPUT[proc.pid][1]
