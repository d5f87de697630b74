"""Module closure and staging on a synthetic tree (plus one real-tree check)."""

from __future__ import annotations

import gzip
import lzma
import shutil
import sys
from pathlib import Path

import pytest
import zstandard

from initramfs.kmod import (
    DEFAULT_MODULES,
    KmodError,
    decompress_module,
    load_index,
    module_name,
    parse_softdep,
    resolve_modules,
    run_depmod,
    stage_modules,
)

KVER = "1.0-test"
REAL_ROOT = Path(__file__).resolve().parents[2] / ".cache/kernel/current/root"
_READY = REAL_ROOT.parent / ".ready"
# The build's Debian 12 kernel (its release moves with the security updates).
REAL_KVER = _READY.read_text().strip() if _READY.is_file() else ""

# Fake module bodies: distinct, so a mixed-up copy shows.
BODIES = {
    "kernel/net/top.ko.xz": b"\x7fELF top " * 50,
    "kernel/net/mid-dash.ko.zst": b"\x7fELF mid " * 50,
    "kernel/lib/base.ko": b"\x7fELF base " * 50,
    "kernel/lib/pre_mod.ko.gz": b"\x7fELF pre " * 50,
    "kernel/lib/post_mod.ko": b"\x7fELF post " * 50,
    "kernel/crypto/impl.ko": b"\x7fELF impl " * 50,
    "kernel/other/unused.ko": b"\x7fELF unused " * 50,
}
MODULES_DEP = """\
kernel/net/top.ko.xz: kernel/net/mid-dash.ko.zst kernel/lib/base.ko
kernel/net/mid-dash.ko.zst: kernel/lib/base.ko
kernel/lib/base.ko:
kernel/lib/pre_mod.ko.gz:
kernel/lib/post_mod.ko:
kernel/crypto/impl.ko:
kernel/other/unused.ko:
"""
SOFTDEP = """\
# Soft dependencies extracted from modules themselves.
softdep top pre: pre-mod post: post_mod
softdep base pre: virtual_alias absent_thing
"""
ALIAS = "alias virtual_alias impl\nalias pci:v00001AF4d* top\n"


def _compress(rel: str, data: bytes) -> bytes:
    if rel.endswith(".xz"):
        return lzma.compress(data)
    if rel.endswith(".zst"):
        # no content size in the frame: the decoder must stream
        return zstandard.ZstdCompressor(write_content_size=False).compress(data)
    if rel.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    return data


def make_tree(root: Path, softdep: bool = True) -> Path:
    moddir = root / "lib/modules" / KVER
    for rel, body in BODIES.items():
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        (moddir / rel).write_bytes(_compress(rel, body))
    (moddir / "modules.dep").write_text(MODULES_DEP)
    (moddir / "modules.alias").write_text(ALIAS)
    if softdep:
        (moddir / "modules.softdep").write_text(SOFTDEP)
    (moddir / "modules.builtin").write_text("kernel/net/packet/af_packet.ko\n")
    (moddir / "modules.order").write_text("kernel/lib/base.ko\n")
    return moddir


def test_names_use_dash_and_underscore_alike() -> None:
    assert module_name("kernel/net/mid-dash.ko.zst") == "mid_dash"
    assert module_name("a/b_c.ko") == "b_c"
    with pytest.raises(KmodError):
        module_name("kernel/readme.txt")


def test_parse_softdep_pre_and_post() -> None:
    pre, post = parse_softdep(SOFTDEP)
    assert pre == {"top": ("pre_mod",), "base": ("virtual_alias", "absent_thing")}
    assert post == {"top": ("post_mod",)}


def test_closure_in_dependency_order(tmp_path: Path) -> None:
    index = load_index(make_tree(tmp_path))
    closure = resolve_modules(index, ["top", "mid_dash", "af-packet", "nope"])
    # base's pre softdep "virtual_alias" is an alias of impl; absent_thing is ignored
    assert closure.names == ("pre_mod", "impl", "base", "mid_dash", "top", "post_mod")
    assert closure.paths[-2] == "kernel/net/top.ko.xz"
    assert closure.missing == ("af_packet", "nope")


def test_closure_without_softdep_file(tmp_path: Path) -> None:
    closure = resolve_modules(load_index(make_tree(tmp_path, softdep=False)), ["top"])
    assert closure.names == ("base", "mid_dash", "top")


def test_missing_modules_dep_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(KmodError, match="modules.dep"):
        load_index(tmp_path / "empty")


def test_stage_decompresses_byte_exact(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    staged = stage_modules(tmp_path / "src", KVER, ["top"], tmp_path / "stage", False)
    dst = tmp_path / "stage/lib/modules" / KVER
    assert staged.moddir == dst
    for rel in ("kernel/net/top.ko.xz", "kernel/net/mid-dash.ko.zst", "kernel/lib/pre_mod.ko.gz"):
        plain = rel.rsplit(".ko", 1)[0] + ".ko"
        assert (dst / plain).read_bytes() == BODIES[rel]
    shipped = sorted(str(p.relative_to(dst)) for p in dst.rglob("*.ko*"))
    assert shipped == [
        "kernel/crypto/impl.ko",
        "kernel/lib/base.ko",
        "kernel/lib/post_mod.ko",
        "kernel/lib/pre_mod.ko",
        "kernel/net/mid-dash.ko",
        "kernel/net/top.ko",
    ]
    assert (dst / "modules.builtin").read_text() == "kernel/net/packet/af_packet.ko\n"
    assert (dst / "modules.order").is_file()
    assert not (dst / "modules.builtin.modinfo").exists()  # absent in the source
    assert staged.size == sum(len(BODIES[r]) for r in BODIES if "unused" not in r)


def test_zstd_cli_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("zstd CLI not installed")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import now raises ImportError
    src = make_tree(tmp_path) / "kernel/net/mid-dash.ko.zst"
    assert decompress_module(src) == BODIES["kernel/net/mid-dash.ko.zst"]


def test_corrupt_module_is_a_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ko.xz"
    bad.write_bytes(b"not xz at all")
    with pytest.raises(KmodError, match="bad.ko.xz"):
        decompress_module(bad)


def test_missing_kver_dir(tmp_path: Path) -> None:
    with pytest.raises(KmodError, match="no such module directory"):
        stage_modules(tmp_path, KVER, ["x"], tmp_path / "stage", False)


@pytest.mark.skipif(shutil.which("depmod") is None, reason="kmod's depmod not installed")
def test_depmod_indexes_and_reports_failure(tmp_path: Path) -> None:
    (tmp_path / "lib/modules" / KVER).mkdir(parents=True)
    run_depmod(tmp_path, KVER)
    assert (tmp_path / "lib/modules" / KVER / "modules.dep").is_file()
    with pytest.raises(KmodError, match="depmod"):
        run_depmod(tmp_path / "nowhere", KVER)


def test_default_modules_list() -> None:
    assert len(set(DEFAULT_MODULES)) == len(DEFAULT_MODULES)
    for name in ("virtio_net", "openvswitch", "nf_tables", "bridge", "ext4", "crc32c_generic"):
        assert name in DEFAULT_MODULES
    assert "nft_compat" not in DEFAULT_MODULES
    # netboot roots: squashfs over a loop device under overlayfs; the NFS
    # client is in the netroot add-on (initramfs/netrootaddon.py), not here
    for name in ("loop", "squashfs", "overlay"):
        assert name in DEFAULT_MODULES
    assert not {"nfs", "nfsv3", "nfsv4", "sunrpc"} & set(DEFAULT_MODULES)


@pytest.mark.skipif(
    not REAL_KVER.startswith("6.1.") or not (REAL_ROOT / "lib/modules" / REAL_KVER).is_dir(),
    reason="Debian 12's kernel tree not extracted (./build.sh)",
)
def test_real_kernel_tree(tmp_path: Path) -> None:
    staged = stage_modules(REAL_ROOT, REAL_KVER, ["virtio-net", "openvswitch"], tmp_path)
    names = staged.closure.names
    for need, deps in (
        ("virtio_net", ("net_failover", "failover")),
        ("openvswitch", ("nf_conntrack", "nsh", "libcrc32c")),
    ):
        for dep in deps:
            assert names.index(dep) < names.index(need)
    assert "crc32c_generic" in names  # libcrc32c's softdep on the "crc32c" alias
    assert staged.closure.missing == ()
    assert "virtio_net.ko:" in (staged.moddir / "modules.dep").read_text()
