"""The supervision loop (mosnet.daemon.supervise.Watch) over injected clock, pidfds and poll.

A fake process table: ``start`` hands out pids, a pidfd is ``1000 + pid``,
and the test says which processes end in which poll. The clock only moves
when the loop sleeps (a poll with nothing to report lasts its whole timeout;
one without a timeout returns at once, as a spurious wake-up) or when the
test lets a process live for a while.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from mosnet.base.errors import StartFailed
from mosnet.daemon.supervise import Backoff, Slot, Watch
from tests.unit.helpers.fresh import fresh

FD = 1000


class FakeOps:
    def __init__(self) -> None:
        self.now = 100.0
        self.gone: set[int] = set()  # pids with no process (pidfd_open fails)
        self.children: set[int] = set()  # reaped through the pidfd, with a status
        self.ends: list[set[int]] = []  # per poll: the pids that end in it
        self.closed: list[int] = []
        self.polls: list[tuple[frozenset[int], float | None]] = []
        self.ages: dict[int, float] = {}  # how long an adopted pid has been running

    def clock(self) -> float:
        return self.now

    def pidfd(self, pid: int) -> int | None:
        return None if pid in self.gone else FD + pid

    def age(self, pid: int) -> float:
        return self.ages.get(pid, 0.0)

    def reap(self, fd: int) -> str | None:
        return "signal 9" if fd - FD in self.children else None

    def poll(self, fds: Mapping[int, int], timeout: float | None) -> set[int]:
        self.polls.append((frozenset(fds), timeout))
        ending = self.ends.pop(0) if self.ends else set()
        ready = {FD + pid for pid in ending} & set(fds)
        if not ready and timeout is not None:
            self.now += timeout
        return ready

    def close(self, fd: int) -> None:
        self.closed.append(fd)


class Starter:
    """A slot's start function: pids 11, 12, ...; or failures first."""

    def __init__(self, failures: int = 0) -> None:
        self.next_pid = 11
        self.failures = failures
        self.calls: list[float] = []

    def __call__(self, ops: FakeOps) -> int:
        self.calls.append(ops.now)
        if self.failures:
            self.failures -= 1
            raise StartFailed("not today")
        pid, self.next_pid = self.next_pid, self.next_pid + 1
        return pid


def make(ops: FakeOps, starter: Starter, **kw: Any) -> tuple[Watch, Slot]:
    slot = Slot("@thing", lambda: starter(ops))
    return Watch([slot], ops, **kw), slot


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    b = Backoff(first=1.0, maximum=30.0, stable=10.0)
    assert [b.after(0.5) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.after(10.0) == 1.0
    assert b.after(0.1) == 2.0


def test_a_dead_process_is_started_again_after_the_first_backoff() -> None:
    ops, starter = FakeOps(), Starter()
    watch, slot = make(ops, starter)
    watch.adopt(slot, 10)
    assert slot.pid == 10 and slot.fd == FD + 10 and slot.due is None
    ops.now += 50  # it ran a long time
    ops.ends = [{10}]
    watch.step()
    assert fresh(slot).pid is None and slot.restarts == 1 and fresh(slot).due == ops.now + 1.0
    assert FD + 10 in ops.closed
    watch.step()  # sleeps until due: nothing else to wait for
    assert ops.polls[-1][1] == pytest.approx(1.0)
    watch.step()
    assert starter.calls == [151.0] and slot.pid == 11 and slot.fd == FD + 11
    assert ops.polls[-1] == (frozenset({FD + 11}), None)  # then it sleeps until a death


def test_young_deaths_back_off_and_a_stable_run_resets() -> None:
    ops, starter = FakeOps(), Starter()
    watch, slot = make(ops, starter)
    watch.adopt(slot, 10)
    delays = []
    for pid in range(10, 15):  # each dies at once: 1, 2, 4, 8, 16 s
        ops.ends = [{pid}]
        watch.step()
        assert slot.due is not None
        delays.append(slot.due - ops.now)
        while slot.pid is None:
            watch.step()
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    ops.now += 10.0  # pid 15 lives STABLE seconds
    ops.ends = [{15}]
    watch.step()
    assert slot.due == ops.now + 1.0 and slot.restarts == 6


def test_an_adopted_process_counts_its_whole_life() -> None:
    ops, starter = FakeOps(), Starter()
    ops.ages[10] = 60.0  # the watcher is new, the daemon is not
    watch, slot = make(ops, starter)
    slot.backoff.current = 16.0  # a young death now would wait 30 s
    watch.adopt(slot, 10)
    ops.ends = [{10}]
    watch.step()
    assert slot.due == ops.now + 1.0  # it lived 60 s: stable, the backoff starts over


def test_a_failing_start_is_retried_with_backoff_and_never_given_up() -> None:
    ops, starter = FakeOps(), Starter(failures=3)
    watch, slot = make(ops, starter)
    watch.adopt(slot, None)  # nothing running: start at once
    for _ in range(12):
        watch.step()
    assert [t - 100.0 for t in starter.calls] == [0.0, 1.0, 3.0, 7.0]  # 1, 2, 4 s apart
    assert slot.pid == 11 and slot.restarts == 0


def test_adopting_a_gone_pid_starts_one_now() -> None:
    ops, starter = FakeOps(), Starter()
    ops.gone.add(10)
    watch, slot = make(ops, starter)
    watch.adopt(slot, 10)
    assert slot.pid is None and slot.due == ops.now
    watch.step()
    assert fresh(slot).pid == 11 and starter.calls == [100.0]


def test_a_process_that_ends_before_it_is_watched_is_started_again() -> None:
    ops, starter = FakeOps(), Starter()
    ops.gone.add(11)  # the new one is already gone when its pidfd is opened
    watch, slot = make(ops, starter)
    watch.adopt(slot, None)
    watch.step()
    watch.step()
    assert starter.calls == [100.0, 100.0] and slot.pid == 12


def test_children_are_reaped_through_the_pidfd_and_changes_reported() -> None:
    ops, starter = FakeOps(), Starter()
    ops.children.add(10)
    seen: list[tuple[int | None, int]] = []
    watch, slot = make(ops, starter, on_change=lambda s: seen.append((s.pid, s.restarts)))
    watch.adopt(slot, 10)
    ops.ends = [{10}]
    watch.step()
    watch.step()
    watch.step()
    assert seen == [(None, 1), (11, 1)]


def test_stopping_starts_nothing_and_an_end_is_not_a_restart() -> None:
    ops, starter = FakeOps(), Starter()
    stopping = [False]
    watch, slot = make(ops, starter, stopping=lambda: stopping[0])
    watch.adopt(slot, 10)
    stopping[0] = True
    ops.ends = [{10}]
    watch.step({}, 5.0)
    watch.step({}, 5.0)
    assert slot.pid is None and slot.due is None and slot.restarts == 0
    assert starter.calls == []


def test_extra_fds_are_polled_and_returned_and_the_timeout_caps_the_sleep() -> None:
    ops, starter = FakeOps(), Starter()
    watch, slot = make(ops, starter)
    watch.adopt(slot, 10)
    assert watch.step({7: 1}, 2.5) == set()
    fds, timeout = ops.polls[-1]
    assert fds == {7, FD + 10} and timeout == 2.5
    watch.close()
    assert slot.fd is None and FD + 10 in ops.closed
