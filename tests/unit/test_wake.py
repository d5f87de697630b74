"""mosnet.base.wake: the stop flag the daemon's and the proxy's loops sleep on."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

from mosnet.base.wake import Waker, wait_readable


def test_set_wakes_every_thread_blocked_on_the_fd() -> None:
    waker = Waker()
    woke: list[float] = []

    def sleeper() -> None:
        assert waker.fileno() in wait_readable([waker.fileno()], None)  # no timeout at all
        woke.append(time.monotonic())

    threads = [threading.Thread(target=sleeper) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert not woke and not waker.is_set()
    t0 = time.monotonic()
    waker.set()
    for t in threads:
        t.join(2.0)
    assert len(woke) == 3 and max(woke) - t0 < 0.5
    assert waker.is_set() and waker.wait() and waker.wait(0.0)  # stays set
    waker.close()


def test_wait_times_out_and_reports_only_ready_fds() -> None:
    waker = Waker()
    a, b = socket.socketpair()
    t0 = time.monotonic()
    assert wait_readable([waker.fileno(), a.fileno()], 0.1) == set()
    assert time.monotonic() - t0 >= 0.1  # rounded up: never early, so no zero-timeout spin
    b.send(b"x")
    assert wait_readable([waker.fileno(), a.fileno()], 5.0) == {a.fileno()}
    assert not waker.wait(0.05)
    for s in (a, b):
        s.close()
    waker.close()


def test_sigterm_handler_ends_a_wait_without_timeout() -> None:
    waker = Waker()
    old = signal.signal(signal.SIGTERM, lambda *_: waker.set())
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        t0 = time.monotonic()
        timer.start()
        assert waker.wait()  # the main thread, blocked in poll() with no timeout
        assert time.monotonic() - t0 < 2.0
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)
        waker.close()
