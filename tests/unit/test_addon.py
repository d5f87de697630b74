"""The Open vSwitch add-on: file list, nothing from the base twice, placement,
reproducible bytes; then the real tree and the built images when present."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from initramfs import addon, listing
from initramfs.addon import (
    DAEMONS,
    ROOT_TOOLS,
    RUNTIME_MANIFEST,
    SCHEMA,
    TOOLS,
    AddonConfig,
    AddonError,
)
from initramfs.build import compress
from initramfs.cpio import CpioEntry, write_newc
from initramfs.listing import ListingError, list_image, read_image
from initramfs.tree import File, Tree, write_cpio
from mosnet.ovs import ovsrt, vswitch

TOP = Path(__file__).resolve().parents[2]
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not installed")
MULTIARCH = "/usr/lib/x86_64-linux-gnu"
LOADER = "/lib64/ld-linux-x86-64.so.2"


def _gcc(*argv: str | Path) -> None:
    assert GCC is not None
    subprocess.run([GCC, *map(str, argv)], check=True, capture_output=True)


def fake_tree(root: Path) -> Path:
    """An extracted-packages tree: every OVS program links libovs and libshared."""
    lib = root / MULTIARCH.lstrip("/")
    lib.mkdir(parents=True)
    for name in ("ovs", "shared"):
        (root / f"{name}.c").write_text(f"int {name}(void) {{ return 1; }}\n")
        so = lib / f"lib{name}.so.1.0"
        _gcc("-shared", "-fPIC", f"-Wl,-soname,lib{name}.so.1", "-o", so, root / f"{name}.c")
        (lib / f"lib{name}.so.1").symlink_to(f"lib{name}.so.1.0")
        (lib / f"lib{name}.so").symlink_to(f"lib{name}.so.1")
    main = "int ovs(void);\nint shared(void);\nint main(void) { return ovs() - shared(); }\n"
    (root / "main.c").write_text(main)
    prog = root / "prog"
    _gcc("-o", prog, root / "main.c", f"-L{lib}", "-Wl,--no-as-needed", "-lovs", "-lshared")
    for image in (*DAEMONS, *TOOLS):
        dst = root / image.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(prog, dst)
    (root / SCHEMA.lstrip("/")).parent.mkdir(parents=True)
    (root / SCHEMA.lstrip("/")).write_text('{"name": "Open_vSwitch"}\n')
    return root


def fake_base(path: Path) -> Path:
    """A base image with glibc, the loader link, libshared and /usr/sbin."""
    tree = Tree()
    for name in ("libc.so.6", "ld-linux-x86-64.so.2", "libshared.so.1"):
        tree.add_bytes(f"/lib/x86_64-linux-gnu/{name}", b"\x7fELF base", 0o755)
    tree.add_symlink(LOADER, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    tree.add_dir("/usr/sbin")
    tree.add_bytes("/usr/sbin/nft", b"nft", 0o755)
    raw = write_cpio_bytes(tree)
    path.write_bytes(compress(raw, "zstd", 3))
    return path


def write_cpio_bytes(tree: Tree) -> bytes:
    buf = io.BytesIO()
    write_cpio(tree, buf, 0)
    return buf.getvalue()


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    if GCC is None:
        pytest.skip("gcc not installed")
    return fake_tree(tmp_path / "root"), fake_base(tmp_path / "base.img")


def cfg_for(inputs: tuple[Path, Path], out: Path, **kw: Any) -> AddonConfig:
    root, base = inputs
    args: dict[str, Any] = {"compress": "zstd", "zstd_level": 3, "epoch": 1700000000}
    args.update(kw)
    return AddonConfig(root=root, base=base, out=out, **args)


# --- the pure parts ----------------------------------------------------------


def test_file_list_is_programs_their_libraries_and_the_schema(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    report = addon.build_addon(cfg_for(inputs, tmp_path / "ovs.img"))
    files = set(list_image(tmp_path / "ovs.img"))
    expected = {*DAEMONS, *TOOLS, SCHEMA, f"{MULTIARCH}/libovs.so.1", f"{MULTIARCH}/libovs.so.1.0"}
    expected.add(RUNTIME_MANIFEST)
    dirs = {"/usr/bin", "/usr/lib", "/usr/lib/openvswitch-switch", MULTIARCH, "/usr/lib/mosnet"}
    dirs |= {"/usr/share", "/usr/share/openvswitch"}
    assert {str(p) for p in files} == expected | dirs
    assert set(report.files) == expected | dirs
    # libshared and glibc come from the base, the loader is already there
    assert set(report.from_base) == {"libc.so.6", "libshared.so.1"}
    assert set(report.skipped) == {LOADER, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}
    assert report.host_files == ()
    assert report.parts["daemons"] == 2 * report.parts["tools"] // len(TOOLS)


def test_runtime_manifest_names_what_the_loader_looks_for(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """The daemons' loader and libraries, each at a path the combined image holds,
    under its soname: the add-on's libovs, the base's libshared and glibc."""
    root, base = inputs
    entry = addon.collect(root, list_image(base)).tree.get(RUNTIME_MANIFEST)
    assert isinstance(entry, File) and entry.data is not None
    m = ovsrt.parse_manifest(entry.data.decode())
    assert m.loader == LOADER and m.programs == DAEMONS
    assert set(m.libraries) == {
        f"{MULTIARCH}/libovs.so.1",  # the add-on's link, named by the soname
        "/lib/x86_64-linux-gnu/libshared.so.1",  # the base's copy, not the tree's
        "/lib/x86_64-linux-gnu/libc.so.6",
    }


def test_runtime_manifest_refuses_a_library_the_image_lacks(inputs: tuple[Path, Path]) -> None:
    root, base = inputs
    listed = set(list_image(base)) - {PurePosixPath("/lib/x86_64-linux-gnu/libshared.so.1")}
    with pytest.raises(AddonError, match="libshared.so.1"):
        addon.runtime_manifest(root, listed, {PurePosixPath(f"{MULTIARCH}/libovs.so.1")})


def test_nothing_from_the_base_twice_and_the_combination_is_the_union(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    out, combined = tmp_path / "ovs.img", tmp_path / "both.img"
    addon.build_addon(cfg_for(inputs, out, combined=combined))
    base, add = list_image(inputs[1]), list_image(out)
    assert not set(base) & set(add)
    assert combined.read_bytes() == inputs[1].read_bytes() + out.read_bytes()
    both = list_image(combined)
    assert set(both) == set(base) | set(add)
    assert both[PurePosixPath("/usr/sbin/ovsdb-server")].mode & 0o111


def test_placement_is_where_mosnet_ovs_looks(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    addon.build_addon(cfg_for(inputs, tmp_path / "ovs.img"))
    shipped = {str(p) for p in list_image(tmp_path / "ovs.img")}
    for image in (*DAEMONS, *TOOLS):
        name = PurePosixPath(image).name
        found = (
            vswitch.VSWITCHD_PATHS
            if name == "ovs-vswitchd"
            else [f"{d}/{name}" for d in vswitch.BIN_DIRS]
        )
        assert next(p for p in found if p in shipped) == image
    assert SCHEMA == vswitch.SCHEMA and SCHEMA in shipped
    assert {PurePosixPath(p).name for p in DAEMONS} == {"ovsdb-server", "ovs-vswitchd"}
    assert set(ROOT_TOOLS) <= set(TOOLS)
    assert all(p.startswith("/usr/bin/") for p in ROOT_TOOLS)


def test_same_inputs_same_bytes(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    first, second, later = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    addon.build_addon(cfg_for(inputs, first))
    for path in inputs[0].rglob("*"):  # new mtimes must not matter
        os.utime(path, (1, 1), follow_symlinks=False)
    addon.build_addon(cfg_for(inputs, second))
    assert first.read_bytes() == second.read_bytes()
    addon.build_addon(cfg_for(inputs, later, epoch=1700000001))
    assert later.read_bytes() != first.read_bytes()


def test_host_ovs_is_never_used(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    root, base = inputs
    (root / "usr/sbin/ovsdb-server").unlink()
    host = tmp_path / "host"  # a host with OVS installed, as the test deps do
    shutil.copytree(root / "usr", host / "usr", symlinks=True)
    shutil.copy(inputs[0] / "prog", host / "usr/sbin/ovsdb-server")
    with pytest.raises(AddonError, match="ovsdb-server"):
        addon.collect(root, list_image(base), host)
    with pytest.raises(AddonError, match="never read from the host"):
        addon._Layered(root, host, ()).in_sysroot("/usr/sbin/ovsdb-server")


def test_library_missing_from_the_tree_comes_from_the_host_and_is_reported(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    root, base = inputs
    host = tmp_path / "host"
    (host / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (host / "lib64").mkdir()
    shutil.copy(Path(LOADER).resolve(), host / LOADER.lstrip("/"))
    for name in ("libovs.so.1", "libovs.so.1.0"):
        shutil.move(root / MULTIARCH.lstrip("/") / name, host / "lib/x86_64-linux-gnu" / name)
    got = addon.collect(root, list_image(base), host)
    assert got.host_files == [str(host / "lib/x86_64-linux-gnu/libovs.so.1.0")]
    assert got.tree.get("/lib/x86_64-linux-gnu/libovs.so.1") is not None


def test_a_base_path_of_another_kind_is_an_error(tmp_path: Path) -> None:
    tree = Tree()
    tree.add_bytes("/usr/share/openvswitch/x", b"")
    base = {PurePosixPath("/usr/share"): listing.Listed(PurePosixPath("/usr/share"), 0o120777, 3)}
    with pytest.raises(AddonError, match="/usr/share"):
        addon.entries(tree, base)
    same_dir = {PurePosixPath("/usr"): listing.Listed(PurePosixPath("/usr"), 0o40700, 0)}
    assert [e.name for e in addon.entries(tree, same_dir)] == [
        "usr/share",
        "usr/share/openvswitch",
        "usr/share/openvswitch/x",
    ]


def test_listing_reads_concatenated_mixed_archives() -> None:
    def one(name: str) -> bytes:
        buf = io.BytesIO()
        write_newc(buf, [CpioEntry(name, 0o100644, b"x"), CpioEntry("l", 0o120777, b"t")], 0)
        return buf.getvalue()

    data = compress(one("a"), "zstd", 3) + b"\0" * 8 + gzip.compress(one("b")) + one("c")
    members = read_image(data)
    assert [str(m.path) for m in members] == ["/a", "/l", "/b", "/l", "/c", "/l"]
    assert members[1].target == "t" and members[0].size == 1
    with pytest.raises(ListingError):
        read_image(one("a")[:-200])
    with pytest.raises(ListingError):
        read_image(b"BZh9 not an initramfs")


# --- the real package tree and images (skipped before a build) ---------------

OVS_ROOT = TOP / ".cache/ovs/root"
OUT = TOP / "out"
OVS_LIBS: tuple[str, ...]
OVS_LIBS = ("libssl.so.3", "libcrypto.so.3", "libunbound.so.8", "libxdp.so.1", "libbpf.so.1")
OVS_LIBS += ("libnuma.so.1", "libcap-ng.so.0", "libevent-2.1.so.7", "libelf.so.1")
GLIBC = {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"}


@pytest.mark.skipif(not OVS_ROOT.is_dir(), reason="run initramfs/fetch-ovs.sh first")
def test_fetched_packages_close_the_library_set() -> None:
    """Without any base, only glibc may come from the host: fetch-ovs.sh's
    package set is exactly what the resolver needs, and every library
    package it fetched contributes a file."""
    got = addon.collect(OVS_ROOT, {})
    assert {Path(p).name for p in got.host_files} <= GLIBC
    shipped = {Path(str(p)).name for p, _ in got.tree.items()}
    debs = sorted((OVS_ROOT.parent / "debs").glob("*.deb"))
    assert debs
    for deb in debs:
        if deb.name.startswith("openvswitch-"):
            continue
        listing_ = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True)
        names = {line.split()[5].rsplit("/", 1)[-1] for line in listing_.stdout.splitlines()}
        assert names & shipped, f"{deb.name} was fetched but nothing of it is needed"


@pytest.mark.skipif(not (OUT / "mosnet-ovs.img").is_file(), reason="run ./build.sh first")
def test_built_addon_lists_the_expected_paths() -> None:
    add = list_image(OUT / "mosnet-ovs.img")
    base = list_image(OUT / "mosnet-initramfs.img")
    names = {p.name for p in add}
    for image in (*DAEMONS, *TOOLS, SCHEMA):
        assert PurePosixPath(image) in add, image
        assert not add[PurePosixPath(image)].is_dir
    assert set(OVS_LIBS) <= names
    assert not set(add) & set(base)
    assert not names & GLIBC  # the base's own libc and loader serve the add-on
    assert PurePosixPath(LOADER) in base
    report = json.loads((OUT / "ovs-report.json").read_text())
    assert report["host_files"] == []
    assert report["compressed_size"] == (OUT / "mosnet-ovs.img").stat().st_size
    combined = (OUT / "mosnet-initramfs-ovs.img").read_bytes()
    assert (
        combined
        == (OUT / "mosnet-initramfs.img").read_bytes() + (OUT / "mosnet-ovs.img").read_bytes()
    )


@pytest.mark.skipif(not (OUT / "mosnet-initramfs.img").is_file(), reason="run ./build.sh first")
def test_base_image_has_the_openvswitch_module_and_its_dependencies() -> None:
    base = list_image(OUT / "mosnet-initramfs.img")
    modules = {p.name.split(".ko")[0] for p in base if ".ko" in p.name}
    wanted = {"openvswitch", "nsh", "nf_conncount", "nf_nat", "nf_conntrack", "libcrc32c"}
    wanted |= {"nf_defrag_ipv4", "nf_defrag_ipv6", "crc32c_generic"}
    assert wanted <= modules
    assert not any(p.name.startswith("ovs") for p in base), "the base image must stay OVS-free"
    assert PurePosixPath(SCHEMA) not in base and "libunbound.so.8" not in {p.name for p in base}
