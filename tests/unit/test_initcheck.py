"""init.initcheck: would the kernel run this #! script inside the new root?"""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from init import initcheck as ic
from tests.unit.helpers.initcheck_root import BUSYBOX, link, put, refused, runs, script

# pytest fixture, imported by name so that pytest finds it in this module
from tests.unit.helpers.initcheck_root import root as root


def test_script_with_present_interpreter_runs(root: pathlib.Path) -> None:
    script(root, "/sbin/init", "#!/bin/sh\necho hi\n")
    assert runs(root, "/sbin/init").how.startswith("#! '/bin/sh'")
    # A relative interpreter resolves from /, the cwd after the chroot.
    script(root, "/sbin/rel", "#! bin/sh -e\n")
    assert runs(root, "/sbin/rel").how.startswith("#! 'bin/sh'")


def test_old_check_accepted_what_the_new_one_refuses(root: pathlib.Path) -> None:
    """Negative control: '#!/nonexistent/sh' is a regular executable file, all the
    old check (regular file, an x bit) looked at; the kernel would not run it."""
    path = script(root, "/sbin/init", "#!/nonexistent/sh\n")
    st = os.stat(root / path.lstrip("/"))
    assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o111
    reason = refused(root, path)
    assert "#! interpreter" in reason and "/nonexistent" in reason, reason


@pytest.mark.parametrize(
    ("interp_setup", "expected"),
    [
        ("missing", "does not exist"),
        ("not-executable", "is not executable"),
        ("directory", "is not a regular file"),
        ("dangling-link", "does not exist"),
        ("text", "neither ELF nor a #! script"),
    ],
)
def test_script_with_bad_interpreter_is_refused(
    root: pathlib.Path, interp_setup: str, expected: str
) -> None:
    if interp_setup == "not-executable":
        put(root, "/usr/bin/interp", BUSYBOX, mode=0o644)
    elif interp_setup == "directory":
        (root / "usr/bin/interp").mkdir(parents=True)
    elif interp_setup == "dangling-link":
        link(root, "/usr/bin/interp", "/nowhere/sh")
    elif interp_setup == "text":
        script(root, "/usr/bin/interp", "plain text\n")
    script(root, "/sbin/init", "#!/usr/bin/interp\n")
    reason = refused(root, "/sbin/init")
    assert expected in reason and "#! interpreter" in reason, reason


def test_script_interpreter_through_symlinks(root: pathlib.Path) -> None:
    link(root, "/usr/bin/sh", "../../bin/busybox")
    link(root, "/usr/local/bin/sh", "/usr/bin/sh")
    script(root, "/sbin/init", "#!/usr/local/bin/sh\n")
    assert runs(root, "/sbin/init").how.endswith("static")


def test_script_depth_is_bounded_like_the_kernel(root: pathlib.Path) -> None:
    prev = "/bin/sh"
    for i in range(1, ic.SCRIPT_DEPTH + 2):
        prev = script(root, f"/s{i}", f"#!{prev}\n")
    assert runs(root, f"/s{ic.SCRIPT_DEPTH}")
    assert "more than 5 #! scripts" in refused(root, f"/s{ic.SCRIPT_DEPTH + 1}")
    script(root, "/loop", "#!/loop\n")
    assert "more than 5 #! scripts" in refused(root, "/loop")


def test_dos_line_ending_is_refused(root: pathlib.Path) -> None:
    script(root, "/sbin/init", "#!/bin/sh\r\necho hi\r\n")
    assert "'/bin/sh\\x0d'" in refused(root, "/sbin/init")


def test_too_long_shebang_line(root: pathlib.Path) -> None:
    long_dir = "/" + "d" * 300
    script(root, "/sbin/init", f"#!{long_dir}/sh\n")
    assert "longer than 255 bytes" in refused(root, "/sbin/init")
    # A long argument is cut by the kernel, the interpreter's name is whole: runs.
    script(root, "/sbin/init", "#!/bin/sh " + "x" * 300 + "\n")
    assert runs(root, "/sbin/init")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"#!/bin/sh\n", ("/bin/sh", None)),
        (b"#! \t/bin/sh  -e -x  \n", ("/bin/sh", "-e -x")),
        (b"#!/bin/sh", ("/bin/sh", None)),  # no newline, short file
        (b"#!/bin/sh\0 -e\n", ("/bin/sh", None)),
        (b"#!/bin/sh -e\0junk\n", ("/bin/sh", "-e")),
        (b"#!/usr/bin/env python3\n", ("/usr/bin/env", "python3")),
        (b"#!/bin/" + b"x" * 300 + b" arg", None),
        (b"#!" + b" " * 300, None),
        (b"#!\n", None),
        (b"#!   \t\n/bin/sh\n", None),
    ],
)
def test_parse_shebang(line: bytes, expected: tuple[str, str | None] | None) -> None:
    if expected is None:
        with pytest.raises(ic.NotRunnable):
            ic.parse_shebang(line)
    else:
        assert ic.parse_shebang(line) == ic.Shebang(*expected)
