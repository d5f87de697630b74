"""mosnet's processes as tests see them: by the pids state.json records and their ``@`` titles."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mosnet.state import status


def wait_for(cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    """``cond()``'s first true value within ``timeout`` seconds, else AssertionError."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {cond}")


def section(run: Path, key: str) -> dict[str, Any]:
    """One section of ``run/state.json``; {} while there is none."""
    try:
        got = json.loads((run / "state.json").read_text()).get(key) or {}
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children(pid: int, title: str) -> list[int]:
    """Live children of ``pid`` (any of its threads) whose argv[0] starts with ``title``."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if status.alive(k, title)]


def new_pid(run: Path, key: str, title: str, old: int | None = None, timeout: float = 20.0) -> int:
    """Wait until state.json's ``key`` section names a live ``title`` other than ``old``."""

    def found() -> int | None:
        pid = section(run, key).get("pid")
        ok = isinstance(pid, int) and pid != old and status.alive(pid, title)
        return pid if ok else None

    pid: int = wait_for(found, timeout)
    return pid


def stop_all(run: Path) -> None:
    """SIGKILL by pid from state.json, the watcher first (it would start the daemon again);
    the proxy dies with its daemon."""
    for key in ("watch", "daemon"):
        pid = section(run, key).get("pid")
        if isinstance(pid, int) and status.alive(pid, "@mosnet-"):
            os.kill(pid, signal.SIGKILL)
