"""init.initcheck: ELF inits and their loaders in a fake new root."""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.unit.helpers.initcheck_root import (
    BUSYBOX,
    DYNAMIC,
    _pack_half,
    elf_of,
    link,
    patched,
    put,
    refused,
    runs,
    script,
)

# pytest fixture, imported by name so that pytest finds it in this module
from tests.unit.helpers.initcheck_root import root as root


def test_static_and_dynamic_elf_run(root: pathlib.Path) -> None:
    assert "static" in runs(root, "/bin/busybox").how
    dyn = runs(root, "/bin/true")
    interp = elf_of(DYNAMIC).interp
    assert interp is not None and "via" in dyn.how and interp in dyn.how
    assert runs(root, "/bin/sh").resolved == "/bin/busybox"


def test_missing_loader_in_the_new_root_is_refused(root: pathlib.Path) -> None:
    """The host has the loader; the new root does not: only the new root counts."""
    (root / "usr/lib/loader").rename(root / "usr/lib/elsewhere")
    reason = refused(root, "/bin/true")
    assert "ELF interpreter" in reason and "does not exist" in reason, reason


def test_loader_link_escaping_the_root_is_refused(root: pathlib.Path) -> None:
    interp = elf_of(DYNAMIC).interp
    assert interp is not None
    (root / interp.lstrip("/")).unlink()
    link(root, interp, "../../../../../../../../" + os.path.realpath(interp).lstrip("/"))
    assert "escapes the new root" in refused(root, "/bin/true")


@pytest.mark.parametrize("problem", ["not-executable", "text-file", "foreign"])
def test_bad_loader_is_refused(root: pathlib.Path, problem: str) -> None:
    loader = root / "usr/lib/loader" / os.path.basename(elf_of(DYNAMIC).interp or "")
    if problem == "not-executable":
        loader.chmod(0o644)
        expected = "is not executable"
    elif problem == "text-file":
        loader.write_text("#!/bin/sh\n")
        expected = "not an ELF file"
    else:
        patched(str(loader), loader, 18, _pack_half(183 if os.uname().machine != "aarch64" else 62))
        expected = "its ELF interpreter"
    reason = refused(root, "/bin/true")
    assert expected in reason and "ELF interpreter" in reason, reason


def test_foreign_arch_elf_is_refused(root: pathlib.Path) -> None:
    other = 183 if os.uname().machine != "aarch64" else 62  # AArch64, or x86-64
    patched(BUSYBOX, root / "sbin/init", 18, _pack_half(other))
    reason = refused(root, "/sbin/init")
    assert "this kernel runs" in reason and "ELF64" in reason, reason
    # Negative control: the same file unpatched is accepted.
    put(root, "/sbin/init", BUSYBOX)
    assert runs(root, "/sbin/init").how.endswith("static")


@pytest.mark.parametrize(
    ("offset", "data", "expected"),
    [
        (16, b"\x01\x00", "ELF type 1"),  # ET_REL: an object file
        (4, b"\x07", "bad ELF identification"),
        (5, b"\x00", "bad ELF identification"),
    ],
)
def test_broken_elf_header_is_refused(
    root: pathlib.Path, offset: int, data: bytes, expected: str
) -> None:
    patched(BUSYBOX, root / "sbin/init", offset, data)
    assert expected in refused(root, "/sbin/init")


def test_truncated_elf_is_refused(root: pathlib.Path) -> None:
    script(root, "/sbin/init", pathlib.Path(BUSYBOX).read_bytes()[:64])
    assert "cut short" in refused(root, "/sbin/init")


def test_interp_without_nul_is_refused(root: pathlib.Path) -> None:
    raw = pathlib.Path(DYNAMIC).read_bytes()
    interp = (elf_of(DYNAMIC).interp or "").encode()
    nul = raw.index(interp + b"\0") + len(interp)
    patched(DYNAMIC, root / "sbin/init", nul, b"x")
    assert "not NUL-terminated" in refused(root, "/sbin/init")


def test_not_elf_not_script_is_refused(root: pathlib.Path) -> None:
    script(root, "/sbin/empty", b"")
    script(root, "/sbin/text", "echo hello\n")
    assert "(empty)" in refused(root, "/sbin/empty")
    assert "neither ELF nor a #! script" in refused(root, "/sbin/text")
    (root / "sbin/dir").mkdir()
    assert "is not a regular file" in refused(root, "/sbin/dir")
