"""The chain-mode append image (initramfs/append.py) on fake inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from initramfs.append import (
    LIB_DIR,
    AppendConfig,
    AppendError,
    build_append,
    check_paths,
    private_libraries,
)
from initramfs.elf import read_elf, resolve
from initramfs.tree import Tree
from tests.unit.test_kmod import KVER, make_tree

CPIO = shutil.which("cpio")
TRUE = Path("/bin/true")
needs_tools = pytest.mark.skipif(
    CPIO is None or shutil.which("patchelf") is None or not TRUE.is_file(),
    reason="needs GNU cpio, patchelf and /bin/true",
)


def fake_config(tmp_path: Path) -> AppendConfig:
    dist = tmp_path / "dist"
    (dist / "sub").mkdir(parents=True)
    shutil.copy(TRUE, dist / "mosnet-init.bin")
    (dist / "sub/data.txt").write_text("not an ELF\n")
    make_tree(tmp_path / "kernel")
    nft = tmp_path / "host-bin/nft"
    nft.parent.mkdir()
    shutil.copy(TRUE, nft)  # any dynamic program stands in for nft
    return AppendConfig(
        out=tmp_path / "append.img",
        kernel_root=tmp_path / "kernel",
        kver=KVER,
        dist=dist,
        preinit=TRUE,
        extra_elf=(nft,),
        compress="none",
        epoch=1234,
        modules=("top",),
        run_depmod=False,
        report=tmp_path / "append.json",
    )


def extract(image: Path, dest: Path) -> list[str]:
    assert CPIO is not None
    dest.mkdir()
    data = image.read_bytes()
    subprocess.run([CPIO, "-i", "-d", "--quiet"], input=data, cwd=dest, check=True)
    out = subprocess.run([CPIO, "-t", "--quiet"], input=data, capture_output=True, check=True)
    return out.stdout.decode().splitlines()


@needs_tools
def test_append_image_only_uses_private_paths(tmp_path: Path) -> None:
    cfg = fake_config(tmp_path)
    report = build_append(cfg)
    names = extract(cfg.out, tmp_path / "x")
    # Nothing a distro image has: no /init, /bin, /lib, /etc, /dev.
    for name in names:
        assert name in ("mosnet-init", "usr", "usr/lib") or name.startswith("usr/lib/mosnet"), name
    for want in (
        "mosnet-init", "usr/lib/mosnet/mosnet-init.bin", "usr/lib/mosnet/sub/data.txt",
        "usr/lib/mosnet/bin/nft", "usr/lib/mosnet/lib/libc.so.6",
        "usr/lib/mosnet/lib/ld-linux-x86-64.so.2",
        f"usr/lib/mosnet/modules/{KVER}/kernel/net/top.ko",
        f"usr/lib/mosnet/modules/{KVER}/kernel/lib/base.ko",
    ):  # fmt: skip
        assert want in names, want
    assert f"usr/lib/mosnet/modules/{KVER}/kernel/other/unused.ko" not in names
    assert "libc.so.6" in report.libraries and report.compressed_size == cfg.out.stat().st_size
    # The programs load the private libc through the private loader.
    for prog in ("usr/lib/mosnet/mosnet-init.bin", "usr/lib/mosnet/bin/nft"):
        info = read_elf(tmp_path / "x" / prog)
        assert info is not None
        assert info.interp == str(LIB_DIR / "ld-linux-x86-64.so.2")
        assert str(LIB_DIR) in info.rpath and not info.runpath
    # The host's files are untouched (copies were patched).
    host = read_elf(cfg.extra_elf[0])
    assert host is not None and host.interp != str(LIB_DIR / "ld-linux-x86-64.so.2")


@needs_tools
@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_patched_program_runs_with_only_the_private_libraries(tmp_path: Path) -> None:
    """In a root that has nothing but the append image, the program still runs."""
    cfg = fake_config(tmp_path)
    build_append(cfg)
    root = tmp_path / "x"
    extract(cfg.out, root)
    proc = subprocess.run(["chroot", str(root), "/usr/lib/mosnet/bin/nft"], check=False)
    assert proc.returncode == 0
    assert not (root / "lib").exists() and not (root / "lib64").exists()


def test_check_paths_refuses_distro_paths() -> None:
    tree = Tree()
    tree.add_bytes("/mosnet-init", b"x")
    tree.add_bytes("/usr/lib/mosnet/lib/libc.so.6", b"x")
    check_paths(tree)
    tree.add_bytes("/usr/lib/x86_64-linux-gnu/libc.so.6", b"x")
    with pytest.raises(AppendError, match="/usr/lib/x86_64-linux-gnu"):
        check_paths(tree)
    other = Tree()
    other.add_symlink("/init", "mosnet-init")
    with pytest.raises(AppendError, match="/init"):
        check_paths(other)


def test_private_libraries_flatten_links_and_skip_shipped() -> None:
    closure = resolve([TRUE], placed={TRUE: PurePosixPath("/usr/lib/mosnet/bin/true")})
    libs = private_libraries(closure, shipped=())
    assert {"libc.so.6", "ld-linux-x86-64.so.2"} <= set(libs)
    assert all(p.is_file() and not p.is_symlink() for p in libs.values())
    assert "true" not in libs  # the program itself is not a library
    assert "libc.so.6" not in private_libraries(closure, shipped=("libc.so.6",))
