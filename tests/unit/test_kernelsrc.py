"""build.sh --kernel: every kind of source, with packages built by the real dpkg-deb."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from initramfs import kernelsrc
from initramfs.kernelsrc import Apt, KernelSource, KernelSourceError, parse_source, prepare
from initramfs.kmod import stage_modules
from mosnet.base.children import Ran

needs_dpkg = pytest.mark.skipif(
    not (shutil.which("dpkg-deb") and shutil.which("depmod")), reason="needs dpkg-deb and depmod"
)
K12, K13, KUB = "6.1.0-99-amd64", "6.12.99+deb13-amd64", "6.8.0-99-generic"


def _deb(tmp: Path, name: str, files: dict[str, bytes]) -> Path:
    """A binary package holding FILES, made by the real dpkg-deb."""
    tree = tmp / f"{name}.tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name.split('_')[0]}\nVersion: 1\nArchitecture: amd64\n"
        "Maintainer: t <t@t>\nDescription: test\n"
    )
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    out = tmp / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "-Zgzip", "-b", str(tree), str(out)], check=True, capture_output=True
    )
    return out


def _kernel_files(kver: str, modules: str, ext: str) -> dict[str, bytes]:
    packers: dict[str, Callable[[bytes], bytes]] = {
        ".ko": bytes, ".ko.xz": lzma.compress, ".ko.gz": gzip.compress,
    }  # fmt: skip
    pack = packers[ext]
    return {
        f"boot/vmlinuz-{kver}": b"kernel image",
        f"boot/config-{kver}": b"CONFIG_MODULE_DECOMPRESS=y\n",
        f"{modules}/{kver}/kernel/drivers/net/fake-nic{ext}": pack(b"not really an ELF"),
        f"{modules}/{kver}/modules.order": f"kernel/drivers/net/fake-nic{ext}\n".encode(),
    }


# --- parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value", "suite"),
    [
        ("linux-image-amd64", "package", "linux-image-amd64", ""),
        ("linux-image-6.1.0-57-amd64", "package", "linux-image-6.1.0-57-amd64", ""),
        ("linux-image-amd64@trixie", "package", "linux-image-amd64", "trixie"),
        (f"linux-image-{K13}@trixie", "package", f"linux-image-{K13}", "trixie"),
    ],
)
def test_package_names(text: str, kind: str, value: str, suite: str) -> None:
    assert parse_source(text) == KernelSource(kind, value, suite=suite)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "vmlinuz",
        "linux-image-",
        "linux-image-X",
        "linux-image-amd64@",
        "linux-image-a@Tr!",
        "-rf /",
    ],
)
def test_unusable_sources_are_one_line_naming_the_token(text: str) -> None:
    with pytest.raises(KernelSourceError) as err:
        parse_source(text, modules=Path("/nonexistent/lib/modules"))
    assert f"--kernel {text}:" in str(err.value) and "\n" not in str(err.value)


def test_installed_release_and_trees(tmp_path: Path) -> None:
    modules = tmp_path / "lib" / "modules"
    (modules / K12).mkdir(parents=True)
    (tmp_path / "usr/lib/modules" / K13).mkdir(parents=True)
    assert parse_source(K12, modules=modules) == KernelSource("installed", K12, tree=tmp_path)
    by_dir = parse_source(str(modules / K12))
    assert by_dir == KernelSource("installed", K12, tree=tmp_path)
    merged = parse_source(str(tmp_path / "usr/lib/modules" / K13))
    assert merged == KernelSource("installed", K13, tree=tmp_path)
    running = parse_source("installed")
    assert running.kind == "installed" and running.value == os.uname().release
    with pytest.raises(KernelSourceError, match="must be <root>/lib/modules/<release>"):
        parse_source(str(tmp_path))


def test_a_file_must_be_a_deb(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"x")
    with pytest.raises(KernelSourceError, match="must be a linux-image-.*deb"):
        parse_source(str(tmp_path / "vmlinuz"))
    (tmp_path / "k.deb").write_bytes(b"x")
    assert parse_source(str(tmp_path / "k.deb")).kind == "deb"


def test_default_is_the_meta_package_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOSNET_KERNEL_PKG", raising=False)
    assert kernelsrc.default_source() == KernelSource("package", "linux-image-amd64")
    monkeypatch.setenv("MOSNET_KERNEL_PKG", f"linux-image-{K13}@trixie")
    assert kernelsrc.default_source() == KernelSource("package", f"linux-image-{K13}", "trixie")


def test_another_link_leaves_current_alone(tmp_path: Path) -> None:
    system = tmp_path / "system"
    _installed(system, K12)
    _installed(system, K13)
    cache = tmp_path / "cache"
    first = prepare(parse_source(K12, modules=system / "lib/modules"), cache)
    prepare(parse_source(K13, modules=system / "lib/modules"), cache, link="out-debian13")
    assert (cache / "current").resolve() == first.root.parent.resolve()
    assert (cache / "out-debian13" / ".ready").read_text() == K13 + "\n"
    for bad in ("", "../x", "a/b", "installed-x", ".hidden"):
        with pytest.raises(KernelSourceError, match="link name"):
            prepare(parse_source(K12, modules=system / "lib/modules"), cache, link=bad)


# --- local packages --------------------------------------------------------


def _prepared(tmp: Path, deb: Path) -> kernelsrc.KernelTree:
    return prepare(parse_source(str(deb)), tmp / "cache")


@needs_dpkg
def test_debian12_package(tmp_path: Path) -> None:
    deb = _deb(tmp_path, f"linux-image-{K12}_1_amd64", _kernel_files(K12, "lib/modules", ".ko"))
    tree = _prepared(tmp_path, deb)
    assert tree.kver == K12 and tree.vmlinuz.read_bytes() == b"kernel image"
    assert (
        tree.root / "lib/modules" / K12 / "modules.dep"
    ).read_text() == "kernel/drivers/net/fake-nic.ko:\n"
    current = tmp_path / "cache" / "current"
    assert current.is_symlink() and current.resolve() == tree.root.parent.resolve()
    assert (current / ".ready").read_text() == K12 + "\n"  # what qemu/debroot.sh reads
    assert _prepared(tmp_path, deb) == tree  # cached by content


@needs_dpkg
def test_debian13_merged_usr_package_with_xz_modules(tmp_path: Path) -> None:
    files = _kernel_files(K13, "usr/lib/modules", ".ko.xz")
    tree = _prepared(tmp_path, _deb(tmp_path, f"linux-image-{K13}_1_amd64", files))
    moddir = tree.root / "lib/modules" / K13
    assert (tree.root / "lib/modules").is_symlink()
    assert "kernel/drivers/net/fake-nic.ko.xz:" in (moddir / "modules.dep").read_text()
    staged = stage_modules(tree.root, K13, ["fake_nic"], tmp_path / "stage")
    assert staged.closure.names == ("fake_nic",)
    assert (staged.moddir / "kernel/drivers/net/fake-nic.ko").read_bytes() == b"not really an ELF"


@needs_dpkg
def test_gzip_modules_are_decompressed_for_depmod(tmp_path: Path) -> None:
    files = _kernel_files(K12, "lib/modules", ".ko.gz")
    tree = _prepared(tmp_path, _deb(tmp_path, f"linux-image-{K12}_1_amd64", files))
    moddir = tree.root / "lib/modules" / K12
    assert (moddir / "kernel/drivers/net/fake-nic.ko").read_bytes() == b"not really an ELF"
    assert (moddir / "modules.dep").read_text() == "kernel/drivers/net/fake-nic.ko:\n"


@needs_dpkg
def test_ubuntu_image_takes_its_modules_packages(tmp_path: Path) -> None:
    files = _kernel_files(KUB, "lib/modules", ".ko.xz")
    image = {k: v for k, v in files.items() if k.startswith("boot/")}
    modules = {k: v for k, v in files.items() if not k.startswith("boot/")}
    deb = _deb(tmp_path, f"linux-image-{KUB}_6.8.0-99.99_amd64", image)
    with pytest.raises(KernelSourceError, match="linux-modules"):
        _prepared(tmp_path, deb)
    _deb(tmp_path, f"linux-modules-{KUB}_6.8.0-99.99_amd64", modules)
    tree = _prepared(tmp_path, deb)
    assert tree.kver == KUB and (tree.root / "lib/modules" / KUB / "modules.dep").is_file()


@needs_dpkg
def test_packages_that_are_not_kernels(tmp_path: Path) -> None:
    junk = tmp_path / "linux-image-junk.deb"
    junk.write_bytes(b"!<arch>\nnot a package")
    with pytest.raises(KernelSourceError, match="not a package"):
        _prepared(tmp_path, junk)
    other = _deb(tmp_path, "hello_1_amd64", {"usr/bin/hello": b"#!/bin/sh\n"})
    with pytest.raises(KernelSourceError, match=r"no lib/modules/<release>/kernel tree"):
        _prepared(tmp_path, other)
    files = _kernel_files(K12, "lib/modules", ".ko")
    del files[f"boot/vmlinuz-{K12}"]
    no_image = _deb(tmp_path, f"linux-headers-{K12}_1_amd64", files)
    with pytest.raises(KernelSourceError, match=f"no boot/vmlinuz-{K12}"):
        _prepared(tmp_path, no_image)


# --- installed kernels -----------------------------------------------------


def _installed(root: Path, kver: str, dep: bool = True, vmlinuz: bool = True) -> None:
    moddir = root / "lib/modules" / kver
    (moddir / "kernel").mkdir(parents=True)
    if dep:
        (moddir / "modules.dep").write_text("")
    (root / "boot").mkdir(exist_ok=True)
    if vmlinuz:
        (root / "boot" / f"vmlinuz-{kver}").write_bytes(b"installed kernel")


def test_installed_kernel_is_linked_not_copied(tmp_path: Path) -> None:
    system = tmp_path / "system"
    _installed(system, K12)
    tree = prepare(parse_source(K12, modules=system / "lib/modules"), tmp_path / "cache")
    assert (tree.root / "lib/modules" / K12).resolve() == (system / "lib/modules" / K12).resolve()
    assert tree.vmlinuz.read_bytes() == b"installed kernel"
    assert tree.origin == f"installed {(system / 'lib/modules' / K12).resolve()}"


@pytest.mark.parametrize(
    ("dep", "vmlinuz", "why"), [(True, False, "no .*vmlinuz"), (False, True, "no modules.dep")]
)
def test_incomplete_installed_kernels(tmp_path: Path, dep: bool, vmlinuz: bool, why: str) -> None:
    system = tmp_path / "system"
    _installed(system, K12, dep=dep, vmlinuz=vmlinuz)
    with pytest.raises(KernelSourceError, match=why):
        prepare(parse_source(K12, modules=system / "lib/modules"), tmp_path / "cache")


# --- apt, on the system's lists or a private suite's ------------------------


class FakeApt:
    """Records argv; answers apt-cache depends and apt-get download."""

    def __init__(self, download_ok: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.download_ok = download_ok

    def __call__(self, argv: Sequence[str], cwd: Path) -> Ran:
        self.calls.append(list(argv))
        out, rc = "", 0
        if "depends" in argv:
            out = f"linux-image-amd64\n  Depends: linux-image-{K13}\n"
        if "download" in argv:
            rc = 0 if self.download_ok else 100
        return Ran(tuple(argv), rc, out, "E: Unable to locate package\n")


def test_private_suite_never_uses_the_system_sources(tmp_path: Path) -> None:
    fake = FakeApt()
    apt = Apt(tmp_path / "apt", "trixie", fake)
    assert apt.resolve("linux-image-amd64") == f"linux-image-{K13}"
    assert fake.calls[0][:3] == [
        "apt-get",
        "-oAPT::Sandbox::User=root",
        f"-oDir::Etc::sourcelist={tmp_path}/apt/trixie/sources.list",
    ]
    assert all("-oDir::Etc::sourceparts=-" in call for call in fake.calls)
    assert "trixie main" in (tmp_path / "apt/trixie/sources.list").read_text()
    assert apt.resolve(f"linux-image-{K12}") == f"linux-image-{K12}"  # versioned: no lookup


def test_system_suite_uses_plain_apt_and_reports_download_failure(tmp_path: Path) -> None:
    fake = FakeApt(download_ok=False)
    apt = Apt(tmp_path / "apt", "", fake)
    with pytest.raises(KernelSourceError, match=r"apt-get download failed: E: Unable to locate"):
        apt.download(f"linux-image-{K12}", tmp_path / "cache" / "k")
    assert [[c[0], c[-2]] for c in fake.calls] == [
        ["apt-get", "download"], ["apt-get", "update"], ["apt-get", "download"],
    ]  # fmt: skip


def test_the_extracted_build_kernel_as_an_installed_tree(tmp_path: Path) -> None:
    """The tree build.sh unpacked, named by its module directory as a user would."""
    current = Path(__file__).resolve().parents[2] / ".cache/kernel/current"
    if not (current / ".ready").is_file():
        pytest.skip("no kernel prepared yet: run ./build.sh")
    kver = (current / ".ready").read_text().strip()
    moddir = (current / "root/lib/modules" / kver).resolve()
    tree = prepare(parse_source(str(moddir)), tmp_path / "cache")
    assert (
        tree.kver == kver
        and tree.vmlinuz.resolve() == (current / "root/boot" / f"vmlinuz-{kver}").resolve()
    )
    staged = stage_modules(tree.root, kver, ["virtio_net"], tmp_path / "stage")
    assert "virtio_net" in staged.closure.names and not staged.closure.missing


def test_tools_run_in_a_directory_made_for_them(tmp_path: Path) -> None:
    """A fresh checkout has no .cache/apt/system: that is no missing tool."""
    res = kernelsrc.run_tool(["true"], tmp_path / "fresh" / "apt" / "system")
    assert res.returncode == 0 and (tmp_path / "fresh/apt/system").is_dir()
    with pytest.raises(KernelSourceError, match="no-such-tool-x not found"):
        kernelsrc.run_tool(["no-such-tool-x"], tmp_path)
