"""mosnet.base.children: one runner for every helper, with real processes.

Every failure comes back as a ``Ran`` (nothing raises), every child leaves
the protected set once it has been waited for, and a timeout kills the
helper's whole process group.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosnet.base import children


@pytest.fixture(autouse=True)
def nothing_left_protected() -> Iterator[None]:
    yield
    assert children.protected() == frozenset()


def test_true_and_false() -> None:
    ok = children.run(["true"], timeout=10)
    assert (ok.returncode, ok.failure, ok.ok, ok.argv) == (0, None, True, ("true",))
    bad = children.run(["false"], timeout=10)
    assert (bad.returncode, bad.failure, bad.ok) == (1, None, False)


def test_exit_status_and_output() -> None:
    ran = children.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, "out\n", "err\n")
    assert ran.said == "err"
    assert children.run(["sh", "-c", "echo only out"], timeout=10).said == "only out"


def test_missing_binary() -> None:
    ran = children.run(["/nonexistent/helper", "-x"], timeout=10)
    assert (ran.failure, ran.returncode, ran.ok) == ("missing", None, False)
    assert "No such file or directory" in ran.error


def test_not_executable_is_an_oserror(tmp_path: os.PathLike[str]) -> None:
    script = os.path.join(tmp_path, "script")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    ran = children.run([script], timeout=10)
    assert ran.failure == "oserror" and "Permission denied" in ran.error


def test_timeout_kills_the_group() -> None:
    start = time.monotonic()
    ran = children.run(["sh", "-c", "echo started; sleep 30 & sleep 30"], timeout=0.3)
    assert time.monotonic() - start < 10  # the background sleep held no pipe open
    assert (ran.failure, ran.returncode) == ("timeout", None)
    assert ran.error.endswith("timed out after 0.3 seconds")
    assert ran.stdout == "started\n"


def test_stdin_passthrough_and_none() -> None:
    assert children.run(["cat"], timeout=10, stdin="a\nb\n").stdout == "a\nb\n"
    assert children.run(["cat"], timeout=10).stdout == ""  # /dev/null, never our stdin


def test_big_stdout_and_stdin() -> None:
    big = "x" * (4 << 20) + "\n"  # far beyond a pipe buffer, both ways
    ran = children.run(["cat"], timeout=30, stdin=big)
    assert ran.ok and ran.stdout == big
    ran = children.run(["sh", "-c", "head -c 5000000 /dev/zero"], timeout=30)
    assert ran.ok and len(ran.stdout) == 5_000_000


def test_environment_and_executable() -> None:
    ran = children.run(["sh", "-c", 'echo "$ONLY"'], timeout=10, env={"ONLY": "this"})
    assert ran.stdout == "this\n"
    named = children.run(["@name", "-c", 'echo "$0"'], timeout=10, executable="/bin/sh")
    assert named.stdout == "@name\n"


def test_undecodable_output_is_replaced() -> None:
    ran = children.run(["printf", "a\\377b"], timeout=10)
    assert ran.stdout == "a\ufffdb"


def test_empty_argv_is_a_bug() -> None:
    with pytest.raises(ValueError):
        children.run([], timeout=10)


def test_stdin_bytes_as_surrogates_pass_unchanged() -> None:
    ran = children.run(
        ["od", "-An", "-tx1"], timeout=10, stdin=b"\xff\n".decode("utf-8", "surrogateescape")
    )
    assert ran.stdout.split() == ["ff", "0a"]


def test_runs_in_the_directory_given(tmp_path: Path) -> None:
    ran = children.run(["pwd"], timeout=10, cwd=str(tmp_path))
    assert ran.ok and ran.stdout.strip() == str(tmp_path)
