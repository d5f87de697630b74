"""init.rootdev: filesystem probes and GPT/MBR partition tables on real images."""

from __future__ import annotations

import pathlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from init import blkid, rootdev
from init.rootdev import FsInfo
from tests.unit.helpers.rootdev_images import EXT_UUID, P1_UUID, P2_UUID, run, sparse, tool

# pytest fixtures, imported by name so that pytest finds them in this module
from tests.unit.helpers.rootdev_images import ext4_img as ext4_img
from tests.unit.helpers.rootdev_images import gpt_img as gpt_img
from tests.unit.helpers.rootdev_images import images as images
from tests.unit.helpers.rootdev_images import mbr_img as mbr_img

XFS_UUID = "11111111-2222-4333-8444-555555555555"


def test_probe_ext4(ext4_img: pathlib.Path) -> None:
    assert rootdev.probe(str(ext4_img)) == FsInfo("ext4", EXT_UUID, "rootfs")


def test_probe_ext2_ext3(images: pathlib.Path) -> None:
    for fstype in ("ext2", "ext3"):
        img = sparse(images / f"{fstype}.img", 4 << 20)
        run(tool(f"mkfs.{fstype}"), "-q", "-F", "-L", fstype, str(img))
        info = rootdev.probe(str(img))
        assert info is not None and (info.fstype, info.label) == (fstype, fstype)


def test_probe_vfat_fat16_and_fat32(images: pathlib.Path) -> None:
    mkfs = tool("mkfs.vfat")
    fat16 = sparse(images / "fat16.img", 16 << 20)
    run(mkfs, "-F", "16", "-i", "1234ABCD", "-n", "EFI", str(fat16))
    assert rootdev.probe(str(fat16)) == FsInfo("vfat", "1234-ABCD", "EFI")
    fat32 = sparse(images / "fat32.img", 40 << 20)
    run(mkfs, "-F", "32", "-i", "deadbeef", str(fat32))
    assert rootdev.probe(str(fat32)) == FsInfo("vfat", "DEAD-BEEF", None)


def test_probe_xfs(images: pathlib.Path) -> None:
    img = sparse(images / "xfs.img", 320 << 20)
    run(tool("mkfs.xfs"), "-q", "-f", "-m", f"uuid={XFS_UUID}", "-L", "xroot", str(img))
    assert rootdev.probe(str(img)) == FsInfo("xfs", XFS_UUID, "xroot")


def test_probe_squashfs(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("hi")
    img = tmp_path / "sq.img"
    run(tool("mksquashfs"), str(src), str(img), "-quiet", "-noappend")
    assert rootdev.probe(str(img)) == FsInfo("squashfs")


def test_probe_btrfs_synthetic(tmp_path: pathlib.Path) -> None:
    buf = bytearray(0x11000)
    buf[0x10040:0x10048] = b"_BHRfS_M"
    buf[0x10020:0x10030] = bytes(range(16))
    buf[0x1012B:0x10130] = b"broot"
    img = tmp_path / "btrfs.img"
    img.write_bytes(bytes(buf))
    info = rootdev.probe(str(img))
    assert info == FsInfo("btrfs", "00010203-0405-0607-0809-0a0b0c0d0e0f", "broot")


def test_probe_unknown_and_missing(tmp_path: pathlib.Path) -> None:
    img = sparse(tmp_path / "zero.img", 1 << 20)
    assert rootdev.probe(str(img)) is None
    assert rootdev.probe(str(tmp_path / "absent")) is None
    (tmp_path / "short").write_bytes(b"x")
    assert rootdev.probe(str(tmp_path / "short")) is None


def test_gpt_partitions(gpt_img: pathlib.Path) -> None:
    parts = rootdev.read_partitions(str(gpt_img))
    assert [(p.number, p.partuuid, p.partlabel) for p in parts] == [
        (1, P1_UUID, "system"),
        (2, P2_UUID, "data"),
    ]
    assert (parts[0].start, parts[0].size) == (2048 * 512, 16384 * 512)
    # The partition's filesystem is probed at its offset inside the disk image.
    assert rootdev.probe(str(gpt_img), parts[0].start) == FsInfo("ext4", EXT_UUID, "rootfs")
    # A partitioned disk is not itself a filesystem (the protective MBR is not FAT).
    assert rootdev.probe(str(gpt_img)) is None


def test_mbr_partitions_with_logical(mbr_img: pathlib.Path) -> None:
    parts = rootdev.read_partitions(str(mbr_img))
    assert [(p.number, p.partuuid) for p in parts] == [
        (1, "1234abcd-01"),
        (2, "1234abcd-02"),
        (5, "1234abcd-05"),
        (6, "1234abcd-06"),
    ]
    assert parts[2].start == 12288 * 512 and parts[3].start == 18432 * 512
    assert all(p.partlabel is None for p in parts)


def test_no_partition_table(ext4_img: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert rootdev.read_partitions(str(ext4_img)) == ()
    assert rootdev.read_partitions(str(tmp_path / "absent")) == ()


def _ebr(link: int) -> bytes:
    ebr = bytearray(512)
    ebr[446 + 4] = 0x83  # one logical partition...
    ebr[446 + 8 : 446 + 12] = (1).to_bytes(4, "little")
    ebr[462 + 4] = 0x05  # ...and a link to the next EBR, relative to the extended start
    ebr[462 + 8 : 462 + 12] = link.to_bytes(4, "little")
    ebr[510:512] = b"\x55\xaa"
    return bytes(ebr)


def test_mbr_ebr_loop_is_bounded(tmp_path: pathlib.Path) -> None:
    buf = bytearray(4096)
    buf[510:512] = b"\x55\xaa"
    buf[446 + 4] = 0x05  # extended partition at LBA 1
    buf[446 + 8 : 446 + 12] = (1).to_bytes(4, "little")
    buf[512:1024] = _ebr(1)  # LBA 1 -> LBA 2
    buf[1024:1536] = _ebr(1)  # LBA 2 -> LBA 2 again: a loop
    (tmp_path / "d").write_bytes(bytes(buf))
    parts = blkid.read_mbr(str(tmp_path / "d"))
    assert parts is not None and 3 <= len(parts) <= 1 + 128
    assert parts[1].partuuid == "00000000-05" and parts[1].start == 2 * 512


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=2048),
    st.sampled_from([b"", b"EFI PART", b"\x55\xaa"]),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 32) - 1),
)
def test_garbage_tables_never_raise(
    tmp_path_factory: pytest.TempPathFactory,
    body: bytes,
    magic: bytes,
    lba: int,
    count: int,
    size: int,
) -> None:
    buf = bytearray(body.ljust(2048, b"\0"))
    if magic == b"EFI PART":
        buf[512:520] = magic
        buf[512 + 72 : 512 + 88] = struct.pack("<QII", lba % (1 << 64), count, size % (1 << 32))
    elif magic:
        buf[510:512] = magic
    path = tmp_path_factory.mktemp("g") / "disk"
    path.write_bytes(bytes(buf))
    assert isinstance(rootdev.read_partitions(str(path)), tuple)
    rootdev.probe(str(path))
    blkid.probe_bytes(bytes(buf))
