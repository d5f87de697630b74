"""The daemon's '@' name must be what /proc/<pid>/cmdline shows (systemd reads it)."""

from __future__ import annotations

import os

from mosnet.base import proctitle


def test_set_title_rewrites_cmdline_and_comm_in_a_child() -> None:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        title_set = proctitle.set_title("@mosnet-daemon")
        with open("/proc/self/comm") as f:
            comm = f.read().strip()
        os.write(write_fd, f"{title_set}|{proctitle.read_cmdline()}|{comm}".encode())
        os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 4096).decode()
    os.waitpid(pid, 0)
    ok, cmdline, comm = data.split("|")
    assert ok == "True"
    assert cmdline == "['@mosnet-daemon']"
    assert comm == "mosnet-daemon"


def test_title_longer_than_the_argv_area_is_refused() -> None:
    start, end = proctitle._arg_area()
    assert proctitle.set_title("@" + "x" * (end - start + 10)) is False
