"""The forked daemon sleeps on its stop eventfd and SIGTERM ends it at once (issue 7)."""

from __future__ import annotations

import os
import pathlib
import signal
import time

from mosnet.daemon import mainloop


def _wakeups(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/task/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def test_daemon_without_client_sleeps_until_sigterm(tmp_path: pathlib.Path) -> None:
    # no lease to keep, no proxy: the main thread only waits
    handle = mainloop.spawn(None, run_dir=str(tmp_path))
    try:
        time.sleep(0.5)
        before = _wakeups(handle.pid)
        time.sleep(2.5)
        assert _wakeups(handle.pid) - before <= 1  # the old loop woke every second
        t0 = time.monotonic()
        os.kill(handle.pid, signal.SIGTERM)
        _, status = os.waitpid(handle.pid, 0)
        assert time.monotonic() - t0 < 1.0 and os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(handle.notify_fd)
        try:
            os.kill(handle.pid, signal.SIGKILL)
            os.waitpid(handle.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
