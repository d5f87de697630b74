"""The proxy process supervisor (mosnet.daemon.proxyproc.Supervisor) with real forks.

``child_main`` is monkeypatched before the fork, so the child runs a stand-in
(exit at once, or sleep) and leaves through ``os._exit``; backoff constants
are made small, or the backoff waits recorded instead of slept.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mosnet.daemon import proxyproc
from mosnet.daemon.proxyproc import ProxySpec, Supervisor
from mosnet.proxy.answers import ProxyConfig

NAT = bytes.fromhex("02aa00000001")
SPEC = ProxySpec("up0", ProxyConfig(NAT, frozenset(), frozenset(), frozenset()))


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def gone(pid: int) -> bool:
    """True once ``pid`` is reaped (no zombie left to collect)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def sleepy(spec: ProxySpec) -> int:
    time.sleep(60)
    return 0


class RecordingEvent(threading.Event):
    """Records the backoff waits and sleeps only a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(0.001 if timeout is not None else None)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxyproc, "MAX_BACKOFF", 0.02)
    monkeypatch.setattr(proxyproc, "STABLE", 100.0)


def start(sup: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Kill what a failed test left running; only our own children, still unreaped."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def test_a_dying_child_is_restarted_until_stop(
    monkeypatch: pytest.MonkeyPatch, quick: None
) -> None:
    monkeypatch.setattr(proxyproc, "child_main", lambda spec: 1)
    sup = Supervisor(SPEC)
    thread = start(sup)
    assert wait_for(lambda: sup.restarts >= 2), sup.restarts
    sup.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert sup.pid is None or gone(sup.pid)


def test_stop_kills_and_reaps_a_long_running_child(
    monkeypatch: pytest.MonkeyPatch, quick: None, cleanup: list[int]
) -> None:
    monkeypatch.setattr(proxyproc, "child_main", sleepy)
    sup = Supervisor(SPEC)
    thread = start(sup)
    assert wait_for(lambda: sup.pid is not None)
    pid = sup.pid
    assert pid is not None
    cleanup.append(pid)
    time.sleep(0.05)
    assert not gone(pid)  # alive: not reaped yet
    sup.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert sup.restarts == 0 and sup.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_the_child_exit_status_reaches_os_exit(
    monkeypatch: pytest.MonkeyPatch, cleanup: list[int]
) -> None:
    """``_spawn`` in the child never returns into the caller."""
    monkeypatch.setattr(proxyproc, "child_main", lambda spec: 7)
    sup = Supervisor(SPEC)
    pid = sup._spawn()
    cleanup.append(pid)
    assert sup.pid == pid
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


def test_a_raising_child_exits_1(monkeypatch: pytest.MonkeyPatch, cleanup: list[int]) -> None:
    def boom(spec: ProxySpec) -> int:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # keep the traceback out of the log
        raise RuntimeError("boom")

    monkeypatch.setattr(proxyproc, "child_main", boom)
    pid = Supervisor(SPEC)._spawn()
    cleanup.append(pid)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1


def test_backoff_doubles_for_young_deaths_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxyproc, "child_main", lambda spec: 1)
    monkeypatch.setattr(proxyproc, "STABLE", 100.0)
    sup = Supervisor(SPEC)
    event = RecordingEvent()
    sup._stopping = event
    thread = start(sup)
    assert wait_for(lambda: sup.restarts >= 7)
    sup.stop()
    thread.join(5)
    assert not thread.is_alive()
    waits = [w for w in event.waits if w is not None][:7]
    assert waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, proxyproc.MAX_BACKOFF]
    assert set(waits[5:]) == {proxyproc.MAX_BACKOFF}


def test_backoff_resets_after_a_stable_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxyproc, "child_main", lambda spec: 1)
    monkeypatch.setattr(proxyproc, "STABLE", 0.0)  # every child counts as stable
    sup = Supervisor(SPEC)
    event = RecordingEvent()
    sup._stopping = event
    thread = start(sup)
    assert wait_for(lambda: sup.restarts >= 3)
    sup.stop()
    thread.join(5)
    assert set(w for w in event.waits if w is not None) == {1.0}


def test_a_killed_child_is_restarted(
    monkeypatch: pytest.MonkeyPatch, quick: None, cleanup: list[int]
) -> None:
    monkeypatch.setattr(proxyproc, "child_main", sleepy)
    sup = Supervisor(SPEC)
    thread = start(sup)
    assert wait_for(lambda: sup.pid is not None)
    first = sup.pid
    assert first is not None
    cleanup.append(first)
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: sup.restarts == 1 and sup.pid not in (None, first))
    second = sup.pid
    assert second is not None
    cleanup.append(second)
    assert gone(first)
    sup.stop()
    thread.join(5)
    assert not thread.is_alive() and gone(second)


def test_stop_before_run_starts_nothing() -> None:
    def fork() -> int:
        raise AssertionError("forked after stop()")  # not 0: that would be the child's path

    sup = Supervisor(SPEC, fork=fork)
    sup.stop()
    sup.run()
    assert sup.pid is None and sup.restarts == 0


def test_stop_racing_a_fork_still_stops_the_child(
    monkeypatch: pytest.MonkeyPatch, quick: None, cleanup: list[int]
) -> None:
    monkeypatch.setattr(proxyproc, "child_main", sleepy)
    holder: list[Supervisor] = []
    forked: list[int] = []

    def fork_after_stop() -> int:
        holder[0].stop()  # stop() lands while the fork is under way
        pid = os.fork()
        forked.append(pid)
        return pid

    sup = Supervisor(SPEC, fork=fork_after_stop)
    holder.append(sup)
    thread = start(sup)
    assert wait_for(lambda: bool(forked))
    cleanup.extend(forked)
    thread.join(1.5)
    stuck = thread.is_alive()
    if stuck:  # our child, unreaped: the thread is waiting for it
        os.kill(forked[0], signal.SIGKILL)
        thread.join(5)
    assert not stuck


@pytest.mark.skipif(not hasattr(Supervisor, "renew"), reason="no Supervisor.renew")
def test_renew_replaces_the_child_at_once(
    monkeypatch: pytest.MonkeyPatch, cleanup: list[int]
) -> None:
    monkeypatch.setattr(proxyproc, "child_main", sleepy)
    sup = Supervisor(SPEC)
    event = RecordingEvent()
    sup._stopping = event
    thread = start(sup)
    assert wait_for(lambda: sup.pid is not None)
    first = sup.pid
    assert first is not None
    cleanup.append(first)
    sup.renew()
    assert wait_for(lambda: sup.pid not in (None, first))
    second = sup.pid
    assert second is not None
    cleanup.append(second)
    assert gone(first)
    assert sup.restarts == 0 and [w for w in event.waits if w is not None] == []  # no backoff
    sup.stop()
    thread.join(5)
    assert not thread.is_alive() and gone(second)
