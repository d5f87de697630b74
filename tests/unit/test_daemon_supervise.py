"""The daemon and its watcher keep each other alive, with real processes (issue 13 §6).

``daemon.spawn`` without a lease (no network needed), with a proxy whose
body is a stand-in that only sleeps under its ``@`` name. Killing any one
of them leaves the rest supervised: a SIGKILLed daemon is replaced by the
watcher (its proxy dies with it, the new daemon starts one), a SIGKILLed
watcher by the daemon, a daemon that raises is started again, and SIGTERM
stops both. Lease take-over against a real DHCP server: tests/netns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosnet.base import log, proctitle
from mosnet.daemon import mainloop, proxyproc
from mosnet.daemon.proxyproc import ProxySpec
from mosnet.proxy.answers import ProxyConfig
from mosnet.state import status
from tests.mosprocs import children, new_pid, ppid, section, stop_all, wait_for

SPEC = ProxySpec("lo", ProxyConfig(bytes.fromhex("02aa00000001"), frozenset(), frozenset(),
                                   frozenset()))  # fmt: skip


def sleeping_proxy(spec: ProxySpec) -> int:
    proctitle.set_title(proxyproc.TITLE)
    time.sleep(120)
    return 0


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A run dir with a boot log the forks write to; every mosnet process killed after."""
    monkeypatch.setattr(proxyproc, "child_main", sleeping_proxy)
    log.add_file(str(tmp_path / "boot.log"))
    level = logging.getLogger(log.PREFIX).level
    logging.getLogger(log.PREFIX).setLevel(logging.INFO)
    try:
        yield tmp_path
    finally:
        root = logging.getLogger(log.PREFIX)
        root.setLevel(level)
        for h in [h for h in root.handlers if isinstance(h, log._FileHandler)]:
            root.removeHandler(h)
            os.close(h.fd)
        stop_all(tmp_path)
        for pid in _ours:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        _ours.clear()


_ours: list[int] = []  # our direct children, to reap


def test_killing_any_one_leaves_the_rest_supervised(run: Path) -> None:
    handle = mainloop.spawn(mainloop.Duties(proxy=SPEC), run_dir=str(run))
    _ours.append(handle.pid)
    d1 = new_pid(run, "daemon", "@mosnet-daemon")
    w1 = new_pid(run, "watch", "@mosnet-watch")
    assert d1 == handle.pid and ppid(w1) == d1
    (p1,) = wait_for(lambda: children(d1, "@mosnet-proxy"))

    os.kill(d1, signal.SIGKILL)  # the watcher starts a new daemon; the proxy dies with it
    d2 = new_pid(run, "daemon", "@mosnet-daemon", d1)
    assert ppid(d2) == w1
    wait_for(lambda: not status.alive(p1, "@mosnet-proxy"))
    (p2,) = wait_for(lambda: children(d2, "@mosnet-proxy"))
    time.sleep(0.5)
    assert children(d2, "@mosnet-proxy") == [p2]  # one proxy, never two

    os.kill(w1, signal.SIGKILL)  # the daemon starts a new watcher
    w2 = new_pid(run, "watch", "@mosnet-watch", w1)
    assert ppid(w2) == d2 and status.alive(d2, "@mosnet-daemon")
    restarts = section(run, "watch")["restarts"]
    assert restarts == {"@mosnet-daemon": 1, "@mosnet-watch": 1}, restarts

    os.kill(d2, signal.SIGTERM)  # a stop: both end, nothing starts again
    wait_for(lambda: not any(status.alive(p, "@mosnet-") for p in (d2, w2, p2)), 10)
    time.sleep(1.5)  # longer than the first backoff
    assert section(run, "daemon")["pid"] == d2 and section(run, "watch")["pid"] == w2
    text = (run / "boot.log").read_text()
    # neither was the other's child here: no exit status, just the end
    assert f"@mosnet-daemon (pid {d1}) ended after" in text
    assert f"@mosnet-watch (pid {w1}) ended after" in text
    assert f"daemon started (pid {d2}, watcher {w1})" in text
    assert "watcher stopping on SIGTERM" in text


def test_a_daemon_that_raises_is_started_again_with_backoff(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = run / "crash-next"
    real = mainloop._Daemon._start_threads

    def crash_once(self: mainloop._Daemon) -> None:
        if flag.exists():
            flag.unlink()
            raise RuntimeError("injected failure")
        real(self)

    monkeypatch.setattr(mainloop._Daemon, "_start_threads", crash_once)
    handle = mainloop.spawn(None, run_dir=str(run))
    _ours.append(handle.pid)
    d1 = new_pid(run, "daemon", "@mosnet-daemon")
    new_pid(run, "watch", "@mosnet-watch")
    flag.touch()
    os.kill(d1, signal.SIGKILL)
    wait_for(lambda: "RuntimeError: injected failure" in (run / "boot.log").read_text())
    d3 = new_pid(run, "daemon", "@mosnet-daemon", d1)
    text = (run / "boot.log").read_text()
    assert "daemon crashed" in text and "exit status 1 after" in text
    assert "starting it again in 2 s" in text  # it died young: the backoff doubled
    assert section(run, "watch")["restarts"]["@mosnet-daemon"] == 2
    os.kill(d3, signal.SIGTERM)


def test_without_pidfds_the_daemon_runs_unwatched(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel older than 5.3: no watcher rather than one that cannot watch."""
    monkeypatch.setattr(mainloop, "pidfds_work", lambda: False)
    handle = mainloop.spawn(None, run_dir=str(run))
    _ours.append(handle.pid)
    d1 = new_pid(run, "daemon", "@mosnet-daemon")
    time.sleep(0.5)
    assert section(run, "watch") == {} and children(d1, "@mosnet-watch") == []
    assert "no pidfds in this kernel" in (run / "boot.log").read_text()
    os.kill(d1, signal.SIGTERM)
    wait_for(lambda: not status.alive(d1, "@mosnet-daemon"), 10)
