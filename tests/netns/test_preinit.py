"""The static pre-init, compiled here and run as PID 1 of a new pid namespace (root).

It is built from initramfs/preinit.c with its test knobs (main binary,
rescue shell, a file in place of /dev/kmsg, a short first delay). A missing
main binary must leave it alive as PID 1 with a rescue shell that is
respawned, ever more slowly, and whose orphans are reaped; a present one is
exec'd with the same PID and argv.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = REPO / "initramfs" / "preinit.c"
FIRST_DELAY_MS = 50

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("gcc"),
    reason="needs root, unshare and gcc",
)


def compile_c(source: pathlib.Path, out: pathlib.Path, **defines: str) -> pathlib.Path:
    flags = [f"-D{name}={value}" for name, value in defines.items()]
    cmd = ["gcc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(out)]
    subprocess.run([*cmd, str(source)], check=True, capture_output=True, timeout=120)
    return out


def preinit(tmp: pathlib.Path, main: str, shell: str) -> tuple[pathlib.Path, pathlib.Path]:
    """The pre-init binary and its log file (created: it only appends, as to /dev/kmsg)."""
    kmsg = tmp / "kmsg"
    kmsg.touch()
    binary = compile_c(
        SOURCE, tmp / "preinit",
        MAIN_BINARY=f'"{main}"', RESCUE_SHELL=f'"{shell}"', KMSG=f'"{kmsg}"',
        FIRST_DELAY_MS=f"{FIRST_DELAY_MS}L",
    )  # fmt: skip
    return binary, kmsg


@contextmanager
def pid1(binary: pathlib.Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``binary`` as PID 1 of a new pid (and mount) namespace; killed at the end."""
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", str(binary), *args]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def wait_lines(path: pathlib.Path, count: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {count} lines after {timeout} s")


def test_missing_main_binary_respawns_the_rescue_shell(tmp_path: pathlib.Path) -> None:
    starts = tmp_path / "starts"
    shell = tmp_path / "shell"
    # Records its start, its pid and parent, the zombies in the namespace, then
    # leaves an orphan to PID 1 and exits at once.
    shell.write_text(
        "#!/bin/sh\n"
        "z=$(awk '$3 == \"Z\"' /proc/[0-9]*/stat 2>/dev/null | wc -l)\n"
        f'echo "$(date +%s.%N) $$ $PPID $z" >> {starts}\n'
        "sleep 0.01 &\n"
        "exit 3\n"
    )
    shell.chmod(0o755)
    binary, kmsg = preinit(tmp_path, str(tmp_path / "no-such-binary"), str(shell))
    with pid1(binary) as proc:
        runs = [line.split() for line in wait_lines(starts, 5)]
        time.sleep(0.2)
        assert proc.poll() is None, "PID 1 of the namespace is gone"
    assert all(ppid == "1" and pid != "1" for _, pid, ppid, _ in runs)
    assert [z for *_, z in runs[2:]] == ["0"] * (len(runs) - 2), runs  # orphans reaped
    times = [float(t) for t, *_ in runs]
    for i, (a, b) in enumerate(zip(times, times[1:], strict=False)):
        assert b - a >= FIRST_DELAY_MS * 2**i / 1000 * 0.99, (i, times)  # doubling delays
    log = kmsg.read_text()
    assert f"<3>mosnet-preinit: cannot exec {tmp_path}/no-such-binary: No such file" in log
    assert f"rescue shell exited with status 3; respawning in {FIRST_DELAY_MS} ms" in log
    assert f"respawning in {FIRST_DELAY_MS * 4} ms" in log


def test_missing_rescue_shell_too_keeps_pid1_alive(tmp_path: pathlib.Path) -> None:
    binary, kmsg = preinit(tmp_path, str(tmp_path / "no-main"), str(tmp_path / "no-shell"))
    with pid1(binary) as proc:
        deadline = time.monotonic() + 30
        while kmsg.read_text().count("cannot exec " + str(tmp_path / "no-shell")) < 3:
            assert time.monotonic() < deadline, kmsg.read_text()
            time.sleep(0.05)
        assert proc.poll() is None
    assert "rescue shell exited with status 127" in kmsg.read_text()


MAIN_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	FILE *f = fopen(OUT, "w");
	fprintf(f, "%d", (int)getpid());
	for (int i = 0; i < argc; i++)
		fprintf(f, " %s", argv[i]);
	fclose(f);
	pause();
	return 0;
}
"""


def test_present_main_binary_is_execd_as_pid1_with_argv(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "main.out"
    (tmp_path / "main.c").write_text(MAIN_C)
    main = compile_c(tmp_path / "main.c", tmp_path / "main", OUT=f'"{out}"')
    binary, kmsg = preinit(tmp_path, str(main), str(tmp_path / "no-shell"))
    with pid1(binary, "rdinit=/init", "a b") as proc:
        line = wait_lines(out, 1)[0]
        assert proc.poll() is None
    # argv[0] is the main binary's path, the kernel's arguments follow unchanged.
    assert line == f"1 {main} rdinit=/init a b"
    assert kmsg.read_text() == ""
