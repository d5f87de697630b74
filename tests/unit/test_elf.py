"""ELF closure: host binaries, $ORIGIN with a gcc-built pair, sysroots, errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from initramfs.elf import (
    Closure,
    LibLink,
    MissingLibraryError,
    expand_origin,
    is_elf,
    read_elf,
    resolve,
)

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not installed")
LOADER = PurePosixPath("/lib64/ld-linux-x86-64.so.2")


def images(closure: Closure) -> set[str]:
    return {str(f.image_path) for f in closure.files} | {str(x.image_path) for x in closure.links}


def names(closure: Closure) -> set[str]:
    return {PurePosixPath(p).name for p in images(closure)}


@pytest.mark.parametrize("binary", ["/bin/ls", "/usr/bin/python3"])
def test_host_binary_needs_libc_and_loader(binary: str) -> None:
    path = Path(binary)
    info = read_elf(path.resolve())
    if info is None or info.interp != str(LOADER):
        pytest.skip(f"{binary} is not a dynamic x86-64 glibc binary here")
    closure = resolve([path])
    assert "libc.so.6" in names(closure)
    assert "ld-linux-x86-64.so.2" in names(closure)
    # Debian: /lib64/ld-linux-x86-64.so.2 is a symlink; both ends must ship.
    link = {x.image_path: x for x in closure.links}.get(LOADER)
    if link is not None:
        target = PurePosixPath(link.target)
        assert target.is_absolute() and target in {f.image_path for f in closure.files}
    for f in closure.files:
        assert f.source.is_file() and not f.source.is_symlink() or f.source == path


def test_non_elf_is_kept_without_dependencies(tmp_path: Path) -> None:
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\n")
    closure = resolve([text], placed={text: PurePosixPath("/bin/script.sh")})
    assert [str(f.image_path) for f in closure.files] == ["/bin/script.sh"]
    assert closure.links == ()
    assert read_elf(text) is None and not is_elf(text)


def test_expand_origin_tokens() -> None:
    assert expand_origin("$ORIGIN/../lib", "/opt/x") == "/opt/x/../lib"
    assert expand_origin("${ORIGIN}/l:$LIB", "/o") == "/o/l:lib"
    assert expand_origin("/usr/$LIB/x", "") == "/usr/lib/x"


def _gcc(*argv: str | Path) -> None:
    assert GCC is not None
    subprocess.run([GCC, *map(str, argv)], check=True, capture_output=True)


def _build_pair(root: Path, rpath: str, new_dtags: bool = True) -> Path:
    """<root>/lib/libtiny.so.1 (-> libtiny.so.1.0) and <root>/bin/prog using it."""
    (root / "lib").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "tiny.c").write_text("int tiny(void) { return 42; }\n")
    (root / "prog.c").write_text("int tiny(void);\nint main(void) { return tiny() - 42; }\n")
    lib = root / "lib" / "libtiny.so.1.0"
    _gcc("-shared", "-fPIC", "-Wl,-soname,libtiny.so.1", "-o", lib, root / "tiny.c")
    (root / "lib" / "libtiny.so.1").symlink_to("libtiny.so.1.0")
    (root / "lib" / "libtiny.so").symlink_to("libtiny.so.1")
    dtags = "-Wl,--enable-new-dtags" if new_dtags else "-Wl,--disable-new-dtags"
    prog = root / "bin" / "prog"
    _gcc("-o", prog, root / "prog.c", f"-L{root / 'lib'}", "-ltiny", f"-Wl,-rpath,{rpath}", dtags)
    return prog


@needs_gcc
@pytest.mark.parametrize(
    ("rpath", "new_dtags"), [("$ORIGIN/../lib", True), ("${ORIGIN}/../lib", False)]
)
def test_origin_rpath_resolves_next_to_binary(tmp_path: Path, rpath: str, new_dtags: bool) -> None:
    prog = _build_pair(tmp_path / "app", rpath, new_dtags)
    info = read_elf(prog)
    assert info is not None
    assert (info.runpath if new_dtags else info.rpath) == (rpath,)
    subprocess.run([prog], check=True)  # the pair really works on the host
    closure = resolve([prog], placed={prog: PurePosixPath("/opt/app/bin/prog")})
    files = {str(f.image_path): f.source for f in closure.files}
    assert files["/opt/app/lib/libtiny.so.1.0"].samefile(tmp_path / "app/lib/libtiny.so.1.0")
    assert LibLink(PurePosixPath("/opt/app/lib/libtiny.so.1"), "libtiny.so.1.0") in closure.links
    assert "libc.so.6" in names(closure)
    assert files["/opt/app/bin/prog"] == prog


@needs_gcc
def test_missing_library_names_library_and_user(tmp_path: Path) -> None:
    prog = _build_pair(tmp_path / "app", "$ORIGIN/../lib")
    (tmp_path / "app/lib/libtiny.so.1").unlink()
    with pytest.raises(MissingLibraryError) as err:
        resolve([prog], placed={prog: PurePosixPath("/bin/prog")})
    assert err.value.library == "libtiny.so.1"
    assert err.value.needed_by == "/bin/prog"
    assert "libtiny.so.1" in str(err.value) and "/bin/prog" in str(err.value)


@needs_gcc
def test_provided_sonames_are_not_searched(tmp_path: Path) -> None:
    prog = _build_pair(tmp_path / "app", "/nonexistent")
    closure = resolve([prog], provided=["libtiny.so.1"])
    assert "libtiny.so.1" not in names(closure)


@needs_gcc
def test_sysroot_and_extra_dirs(tmp_path: Path) -> None:
    """Everything comes from the sysroot; absolute symlinks stay inside it."""
    prog = _build_pair(tmp_path / "build", "/nonexistent")
    real_loader = Path("/lib64/ld-linux-x86-64.so.2").resolve()
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6").resolve()
    if not (real_loader.is_file() and libc.is_file()):
        pytest.skip("no x86-64 glibc on this host")
    root = tmp_path / "sysroot"
    multiarch = root / "lib/x86_64-linux-gnu"
    multiarch.mkdir(parents=True)
    shutil.copy(real_loader, multiarch / "ld-linux-x86-64.so.2")
    shutil.copy(libc, multiarch / "libc.so.6")
    (root / "lib64").mkdir()
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (root / "opt/tiny").mkdir(parents=True)
    shutil.copy(tmp_path / "build/lib/libtiny.so.1.0", root / "opt/tiny/libtiny.so.1")
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy(prog, root / "usr/bin/prog")

    closure = resolve([root / "usr/bin/prog"], sysroot=root, extra_dirs=["/opt/tiny"])
    files = {str(f.image_path): f.source for f in closure.files}
    assert files == {
        "/usr/bin/prog": root / "usr/bin/prog",
        "/opt/tiny/libtiny.so.1": root / "opt/tiny/libtiny.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6": multiarch / "libc.so.6",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": multiarch / "ld-linux-x86-64.so.2",
    }
    assert closure.links == (LibLink(LOADER, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),)

    with pytest.raises(MissingLibraryError) as err:
        resolve([root / "usr/bin/prog"], sysroot=root)
    assert err.value.library == "libtiny.so.1" and err.value.needed_by == "/usr/bin/prog"
