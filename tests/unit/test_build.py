"""Tree model and the whole builder on fake inputs."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import zstandard

from initramfs import __main__ as cli
from initramfs.build import (
    BuildConfig,
    BuildError,
    build,
    compress,
    config_from_args,
    default_epoch,
)
from initramfs.tree import Dir, File, Node, Symlink, Tree, TreeError, write_cpio
from tests.unit.test_kmod import KVER, make_tree

CPIO = shutil.which("cpio")
TRUE = Path("/bin/true")
needs_tools = pytest.mark.skipif(
    CPIO is None or not TRUE.is_file(), reason="needs GNU cpio and /bin/true"
)


# --- Tree -------------------------------------------------------------------


def test_parents_are_implicit_and_readdable_with_a_mode() -> None:
    tree = Tree()
    tree.add_bytes("/a/b/c", b"x")
    assert tree.get("/a") == Dir() and tree.get("/a/b") == Dir()
    tree.add_dir("/a", 0o700)  # an implicit parent may still get its mode
    assert tree.get("/a") == Dir(0o700)
    with pytest.raises(TreeError):
        tree.add_dir("/a", 0o755)  # an explicit one may not change


def test_same_node_twice_is_fine_a_different_one_is_not() -> None:
    tree = Tree()
    tree.add_symlink("/init", "mosnet-init")
    tree.add_symlink("/init", "mosnet-init")
    with pytest.raises(TreeError, match="/init"):
        tree.add_symlink("/init", "other")
    with pytest.raises(TreeError, match="not a directory"):
        tree.add_bytes("/init/x", b"")


def test_bad_paths_and_kinds() -> None:
    tree = Tree()
    with pytest.raises(TreeError):
        tree.add_bytes("/a/../etc/passwd", b"")
    with pytest.raises(TreeError):
        tree.add_node("/dev/x", "p", 1, 1)
    with pytest.raises(TreeError):
        tree.add_dir("/")


def test_add_tree_keeps_symlinks_and_modes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/run").write_bytes(b"#!")
    (tmp_path / "sub/run").chmod(0o750)
    (tmp_path / "link").symlink_to("sub/run")
    tree = Tree()
    tree.add_tree("/usr/lib/x", tmp_path, part="dist")
    assert tree.get("/usr/lib/x/link") == Symlink("sub/run")
    assert tree.get("/usr/lib/x/sub/run") == File(0o750, source=tmp_path / "sub/run")
    assert tree.sizes_by_part()["dist"] == 2 + len("sub/run")
    skipping = Tree()
    skipping.add_tree("/usr/lib/x", tmp_path, part="dist", skip={"run"})
    assert skipping.get("/usr/lib/x/sub/run") is None and skipping.get("/usr/lib/x/sub")


def test_write_cpio_maps_node_types() -> None:
    tree = Tree()
    tree.add_node("/dev/console", "c", 5, 1, 0o600)
    buf = io.BytesIO()
    write_cpio(tree, buf, 0)
    data = buf.getvalue()
    assert b"dev/console\0" in data and b"00002180" in data  # S_IFCHR | 0600
    assert tree.get("/dev/console") == Node("c", 5, 1, 0o600)


# --- build ------------------------------------------------------------------


def fake_inputs(tmp_path: Path, out_name: str, method: str) -> BuildConfig:
    dist = tmp_path / "dist"
    if not dist.exists():
        (dist / "sub").mkdir(parents=True)
        shutil.copy(TRUE, dist / "mosnet-init.bin")
        shutil.copy(TRUE, dist / "_codecs_jp.so")  # in DIST_UNUSED: left out
        (dist / "sub/data.txt").write_text("not an ELF\n")
        make_tree(tmp_path / "kernel")
    return BuildConfig(
        out=tmp_path / out_name,
        kernel_root=tmp_path / "kernel",
        kver=KVER,
        dist=dist,
        preinit=TRUE,
        busybox=TRUE,  # any ELF will do for the layout
        compress=method,
        epoch=1234,
        modules=("top", "not_here"),
        run_depmod=False,
        report=tmp_path / f"{out_name}.json",
    )


def cpio_list(data: bytes) -> list[str]:
    assert CPIO is not None
    out = subprocess.run(
        [CPIO, "-t", "--quiet"], input=data, capture_output=True, check=True
    ).stdout.decode()
    return out.splitlines()


@needs_tools
def test_build_is_reproducible_and_complete(tmp_path: Path) -> None:
    first = build(fake_inputs(tmp_path, "a.img", "zstd"))
    second = build(fake_inputs(tmp_path, "b.img", "zstd"))
    image = (tmp_path / "a.img").read_bytes()
    assert image == (tmp_path / "b.img").read_bytes()
    assert first == second
    assert first.missing_modules == ("not_here",)
    names = set(cpio_list(zstandard.ZstdDecompressor().stream_reader(image).read()))
    for path in (
        "init", "mosnet-init", "bin/busybox", "bin/sh", "sbin/modprobe",
        "usr/lib/mosnet/mosnet-init.bin", "usr/lib/mosnet/sub/data.txt",
        "lib/x86_64-linux-gnu/libc.so.6", "lib64/ld-linux-x86-64.so.2",
        f"lib/modules/{KVER}/kernel/net/top.ko", f"lib/modules/{KVER}/kernel/lib/base.ko",
        f"lib/modules/{KVER}/modules.builtin", "dev/console", "dev/null",
        "proc", "sys", "run", "tmp", "sysroot", "root", "var",
        "etc/initrd-release", "etc/passwd", "etc/group", "etc/hosts",
    ):  # fmt: skip
        assert path in names, path
    assert f"lib/modules/{KVER}/kernel/other/unused.ko" not in names
    assert "usr/lib/mosnet/_codecs_jp.so" not in names  # the CJK codecs stay out


@needs_tools
def test_layout_details_and_report(tmp_path: Path) -> None:
    report = build(fake_inputs(tmp_path, "g.img", "gzip"))
    assert CPIO is not None
    subprocess.run(
        [CPIO, "-i", "-d", "--quiet", "--no-absolute-filenames", "init", "bin/sh", "etc/*"],
        input=gzip.decompress((tmp_path / "g.img").read_bytes()),
        cwd=tmp_path,
        check=True,
    )
    assert (tmp_path / "init").readlink() == Path("mosnet-init")
    assert (tmp_path / "bin/sh").readlink() == Path("busybox")
    assert (tmp_path / "etc/initrd-release").read_text().startswith("NAME=mosnet\n")
    assert (tmp_path / "etc/passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    saved = json.loads((tmp_path / "g.img.json").read_text())
    assert saved["compressed_size"] == report.compressed_size == (tmp_path / "g.img").stat().st_size
    assert set(saved["parts"]) == {"busybox", "dist", "libraries", "modules", "other", "preinit"}
    assert saved["parts"]["preinit"] == TRUE.stat().st_size
    assert sum(saved["parts"].values()) < saved["cpio_size"]


def test_compressions_are_deterministic() -> None:
    data = b"mosnet " * 1000
    assert gzip.decompress(compress(data, "gzip")) == data
    assert compress(data, "gzip") == compress(data, "gzip")
    assert compress(data, "gzip")[4:8] == b"\0\0\0\0"  # mtime field
    assert zstandard.ZstdDecompressor().decompress(compress(data, "zstd")) == data
    assert compress(data, "none") == data
    with pytest.raises(BuildError):
        compress(data, "lz4")


def test_zstd_cli_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("zstd CLI not installed")
    data = b"fallback " * 100
    monkeypatch.setitem(sys.modules, "zstandard", None)
    packed = compress(data, "zstd")
    monkeypatch.undo()
    assert zstandard.ZstdDecompressor().stream_reader(packed).read() == data


def test_missing_dist_binary(tmp_path: Path) -> None:
    cfg = fake_inputs(tmp_path, "x.img", "none")
    (cfg.dist / "mosnet-init.bin").unlink()
    with pytest.raises(BuildError, match="mosnet-init.bin"):
        build(cfg)
    assert not cfg.out.exists()


def test_epoch_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert default_epoch() == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert default_epoch() == 1700000000
    assert config_from_args(ARGS).epoch == 1700000000
    assert config_from_args([*ARGS, "--epoch", "5"]).epoch == 5
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError):
        default_epoch()


ARGS = [
    "build", "--out", "out/i.img", "--kernel-root", "k", "--kver", "6.1",
    "--dist", "d", "--preinit", "p",
]  # fmt: skip


def test_cli_arguments() -> None:
    cfg = config_from_args(
        [*ARGS, "--compress", "gzip", "--extra-elf", "/bin/a", "--extra-elf", "/bin/b",
         "--modules-extra", "dummy", "--report", "r.json"]
    )  # fmt: skip
    assert cfg.compress == "gzip" and cfg.busybox == Path("/bin/busybox")
    assert cfg.extra_elf == (Path("/bin/a"), Path("/bin/b"))
    assert cfg.modules_extra == ("dummy",) and cfg.report == Path("r.json")
    assert PurePosixPath(str(cfg.out)) == PurePosixPath("out/i.img")


def test_main_reports_errors_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["initramfs", *ARGS, "--kernel-root", str(tmp_path / "none")]
    monkeypatch.setattr(sys, "argv", argv)
    assert cli.main() == 1
    assert "initramfs: error:" in capsys.readouterr().err
