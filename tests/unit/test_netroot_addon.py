"""The netboot-root add-on: modules the base lacks in their own tree, zstd with
the libraries the base lacks, and a combined image whose module index loads
across both trees; then the built images when present."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from init.modindex import NETROOT_MODULES, ModuleIndex
from initramfs import netrootaddon
from initramfs.addon import AddonError
from initramfs.build import compress
from initramfs.kmod import StagedModules, load_index, plain_path, stage_modules
from initramfs.listing import list_image
from initramfs.netrootaddon import MODULE_DIR, NetrootConfig, build_netroot
from initramfs.tree import Tree
from tests.unit.test_addon import LOADER, write_cpio_bytes
from tests.unit.test_kmod import KVER, make_tree

OUT = Path(__file__).resolve().parents[2] / "out"
ZSTD = Path("/usr/bin/zstd")
needs_zstd = pytest.mark.skipif(not ZSTD.is_file(), reason="zstd not installed")
needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
GLIBC = ("libc.so.6", "ld-linux-x86-64.so.2")


def fake_base(path: Path) -> Path:
    """libc, the loader and its link, and one module of the fake kernel ("base")."""
    tree = Tree()
    tree.add_bytes("/lib/x86_64-linux-gnu/libc.so.6", b"\x7fELF base", 0o755)
    # the loader is a path, not a soname: the add-on checks it is the host's
    loader = Path("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    tree.add_file(str(loader), loader.resolve())
    tree.add_symlink(LOADER, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    tree.add_bytes(f"/lib/modules/{KVER}/kernel/lib/base.ko", b"\x7fELF base " * 50)
    tree.add_bytes(f"/lib/modules/{KVER}/modules.dep", b"kernel/lib/base.ko:\n")
    path.write_bytes(compress(write_cpio_bytes(tree), "zstd", 3))
    return path


@pytest.fixture(autouse=True)
def fake_depmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake modules are no ELF files: write the index depmod would write."""
    real = stage_modules

    def stage(
        src: Path, kver: str, wanted: tuple[str, ...], staging: Path, depmod: bool
    ) -> StagedModules:
        staged = real(src, kver, wanted, staging, depmod)
        index = load_index(src / "lib/modules" / kver)
        lines = [
            f"{plain_path(rel)}: "
            + " ".join(plain_path(index.paths[d]) for d in index.deps.get(name, ()))
            for name, rel in zip(staged.closure.names, staged.closure.paths, strict=True)
        ]
        (staged.moddir / "modules.dep").write_text("\n".join(lines) + "\n")
        (staged.moddir / "modules.alias").write_text("")
        return staged

    monkeypatch.setattr(netrootaddon, "stage_modules", stage)


def config(tmp_path: Path, **kw: Any) -> NetrootConfig:
    args: dict[str, Any] = dict(
        base=fake_base(tmp_path / "base.img"), kernel_root=tmp_path / "kernel", kver=KVER,
        out=tmp_path / "netroot.img", combined=tmp_path / "both.img",
        report=tmp_path / "report.json", modules=("top",), run_depmod=False, zstd_level=3,
    )  # fmt: skip
    args.update(kw)
    make_tree(tmp_path / "kernel")
    return NetrootConfig(**args)


@needs_zstd
def test_ships_what_the_base_lacks_and_reports_the_rest(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    report = build_netroot(cfg)
    listed = list_image(cfg.out)
    moddir = MODULE_DIR / KVER
    # "top" pulls mid_dash and base (modules.dep) and pre_mod, impl, post_mod (softdeps)
    assert report.modules == ("impl", "mid_dash", "post_mod", "pre_mod", "top")
    assert report.from_base == ("base",)
    assert moddir / "kernel/net/top.ko" in listed
    assert moddir / "kernel/lib/base.ko" not in listed  # the base has it
    assert moddir / "modules.dep" in listed and moddir / "modules.alias" in listed
    names = {p.name for p in listed}
    assert PurePosixPath("/usr/bin/zstd") in listed and "liblz4.so.1" in names
    assert not names & set(GLIBC), "the base's libc and loader serve zstd"
    assert not set(listed) & {p for p, m in list_image(cfg.base).items() if not m.is_dir}
    both = cfg.base.read_bytes() + cfg.out.read_bytes()
    assert cfg.combined is not None and cfg.combined.read_bytes() == both
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["compressed_size"] == cfg.out.stat().st_size
    assert data["combined_size"] == len(both)
    assert set(data["parts"]) == {"index", "libraries", "modules", "other", "zstd"}


@needs_zstd
@needs_cpio
def test_the_combined_image_loads_modules_across_both_trees(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    build_netroot(cfg)
    root = tmp_path / "unpacked"
    root.mkdir()
    for image in (cfg.base, cfg.out):  # in the kernel's order
        raw = subprocess.run(["zstd", "-dcq", str(image)], check=True, capture_output=True)
        subprocess.run(["cpio", "-idm", "--quiet"], input=raw.stdout, cwd=root, check=True)
    trees = [f"{root}/lib/modules/{KVER}", f"{root}{NETROOT_MODULES}/{KVER}"]
    index = ModuleIndex.load_all(trees)
    order = index.closure("top")
    assert order.index("base") < order.index("mid_dash") < order.index("top")
    # the base's copy of the shared module, the add-on's copies of the rest
    assert index.paths["base"] == f"{trees[0]}/kernel/lib/base.ko"
    assert index.paths["top"] == f"{trees[1]}/kernel/net/top.ko"
    assert all(Path(index.paths[name]).is_file() for name in order)
    assert (root / "usr/bin/zstd").is_file()


@needs_zstd
def test_a_different_loader_in_the_base_is_an_error(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    tree = Tree()
    tree.add_bytes("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", b"other glibc", 0o755)
    tree.add_bytes(f"/lib/modules/{KVER}/kernel/lib/base.ko", b"base")
    cfg.base.write_bytes(compress(write_cpio_bytes(tree), "zstd", 3))
    with pytest.raises(AddonError, match="ld-linux-x86-64.so.2: the base has a different file"):
        build_netroot(cfg)


@needs_zstd
def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    first = build_netroot(config(tmp_path, epoch=1700000000))
    data = (tmp_path / "netroot.img").read_bytes()
    again = build_netroot(config(tmp_path, epoch=1700000000, out=tmp_path / "again.img"))
    assert (tmp_path / "again.img").read_bytes() == data
    assert first.files == again.files


def test_a_module_the_kernel_lacks_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AddonError, match="no module nfs_nope"):
        build_netroot(config(tmp_path, modules=("top", "nfs-nope")))
    assert not (tmp_path / "netroot.img").exists()


def test_a_base_without_modules_for_the_kernel_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AddonError, match="no modules for kernel 9.9"):
        build_netroot(config(tmp_path, kver="9.9"))


def test_cli_arguments(tmp_path: Path) -> None:
    cfg = netrootaddon.config_from_args(
        [
            "--base",
            "b.img",
            "--kernel-root",
            "k",
            "--kver",
            "6.1",
            "--out",
            "n.img",
            "--combined",
            "c.img",
            "--epoch",
            "5",
        ]  # fmt: skip
    )
    assert (cfg.base, cfg.kver, cfg.combined, cfg.epoch) == (Path("b.img"), "6.1", Path("c.img"), 5)
    assert cfg.modules == ("nfs", "nfsv3", "nfsv4") and cfg.program == ZSTD


BUILT = pytest.mark.skipif(
    not (OUT / "mosnet-netroot.img").is_file(), reason="run ./build.sh first"
)


@BUILT
def test_built_images_split_the_netboot_extras_from_the_base() -> None:
    base = list_image(OUT / "mosnet-initramfs.img")
    add = list_image(OUT / "mosnet-netroot.img")
    base_mods = {p.name.split(".ko")[0] for p in base if p.name.endswith(".ko")}
    add_mods = {p.name.split(".ko")[0] for p in add if p.name.endswith(".ko")}
    assert not {"nfs", "nfsv4", "sunrpc"} & base_mods
    assert {"nfs", "nfsv3", "nfsv4", "sunrpc", "lockd"} <= add_mods
    assert not base_mods & add_mods
    assert PurePosixPath("/usr/bin/zstd") not in base and PurePosixPath("/usr/bin/zstd") in add
    assert not {p for p, m in add.items() if not m.is_dir} & set(base)
    both = (OUT / "mosnet-initramfs-netroot.img").read_bytes()
    parts = [(OUT / name).read_bytes() for name in ("mosnet-initramfs.img", "mosnet-netroot.img")]
    assert both == b"".join(parts)


@BUILT
@needs_cpio
def test_built_combined_image_resolves_the_nfs_client_across_trees(tmp_path: Path) -> None:
    for name in ("mosnet-initramfs.img", "mosnet-netroot.img"):  # cpio stops at a trailer
        raw = subprocess.run(["zstd", "-dcq", str(OUT / name)], check=True, capture_output=True)
        subprocess.run(["cpio", "-idm", "--quiet"], input=raw.stdout, cwd=tmp_path, check=True)
    (kver,) = (p.name for p in (tmp_path / "lib/modules").iterdir())
    trees = [f"{tmp_path}/lib/modules/{kver}", f"{tmp_path}{NETROOT_MODULES}/{kver}"]
    index = ModuleIndex.load_all(trees)
    for name in ("nfs", "nfsv3", "nfsv4"):
        order = index.closure(name)
        assert "sunrpc" in order and order[-1] == name
        assert all(Path(index.paths[mod]).is_file() for mod in order), order
    assert index.paths["sunrpc"].startswith(trees[1])
