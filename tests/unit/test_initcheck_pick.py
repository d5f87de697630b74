"""init.initcheck: choosing the init among init= and the default candidates."""

from __future__ import annotations

import pathlib

import pytest

from init import initcheck as ic
from tests.unit.helpers.initcheck_root import ACCEPT, script

# pytest fixture, imported by name so that pytest finds it in this module
from tests.unit.helpers.initcheck_root import root as root


def test_explicit_init_refused_then_the_default_list(root: pathlib.Path) -> None:
    script(root, "/sbin/init", "#!/nonexistent/sh\n")
    script(root, "/etc/init", "#!/bin/sh\necho next\n")
    choice = ic.pick_init(str(root), "/sbin/custom", ACCEPT)
    assert choice.init.path == "/etc/init"
    assert [p for p, _ in choice.refused] == ["/sbin/custom", "/sbin/init"]
    assert "/nonexistent" in choice.refused[1][1]
    # /bin/sh is left to the rescue shell after a failed exec.
    assert choice.later == ("/bin/init",)


def test_relative_init_is_refused_and_the_list_tried(root: pathlib.Path) -> None:
    choice = ic.pick_init(str(root), "bin/busybox", ACCEPT)
    assert choice.refused[0] == ("bin/busybox", "'bin/busybox' is not an absolute path")
    assert choice.init.path == "/bin/sh"


def test_nothing_runnable(tmp_path: pathlib.Path) -> None:
    script(tmp_path, "/sbin/init", "#!/nonexistent/sh\n")
    with pytest.raises(ic.NotRunnable, match="no runnable init in the new root: .*/nonexistent"):
        ic.pick_init(str(tmp_path), None, ACCEPT)


def test_candidates_order() -> None:
    assert ic.candidates(None) == ic.INIT_CANDIDATES
    assert ic.candidates("/bin/sh") == ("/bin/sh", "/sbin/init", "/etc/init", "/bin/init")


def test_resolve_in_root(tmp_path: pathlib.Path) -> None:
    (tmp_path / "lib" / "systemd").mkdir(parents=True)
    (tmp_path / "lib" / "systemd" / "systemd").write_text("")
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "init").symlink_to("/lib/systemd/systemd")
    (tmp_path / "sbin" / "rel").symlink_to("../lib/systemd/../systemd/systemd")
    (tmp_path / "sbin" / "loop").symlink_to("loop")
    (tmp_path / "sbin" / "up").symlink_to("../../etc/passwd")
    root = str(tmp_path)
    assert ic.resolve_in_root(root, "/sbin/init") == "/lib/systemd/systemd"
    assert ic.resolve_in_root(root, "/sbin/rel") == "/lib/systemd/systemd"
    with pytest.raises(ic.NotRunnable, match="too many levels"):
        ic.resolve_in_root(root, "/sbin/loop")
    with pytest.raises(ic.NotRunnable, match="escapes"):
        ic.resolve_in_root(root, "/sbin/up")
