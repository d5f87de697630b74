"""Identify block devices by reading superblocks and partition tables.

The initramfs has no blkid, so the few on-disk formats a root can live on are
read here directly. Every function takes a path (device node or image file)
and byte offsets, so tests run on plain image files without loop devices.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_PROBE_SIZE = 0x10000 + 0x1000  # the btrfs superblock sits at 64 KiB


@dataclass(frozen=True)
class FsInfo:
    fstype: str
    uuid: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class PartInfo:
    number: int  # the Linux partition number (GPT slot + 1, MBR 1-4, logical 5+)
    partuuid: str
    partlabel: str | None  # GPT only
    start: int  # bytes from the start of the disk
    size: int  # bytes


# ---------------------------------------------------------------- superblocks


def _read(path: str, offset: int, size: int) -> bytes:
    # O_NONBLOCK lets an empty CD drive open instead of failing or blocking.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _guid(raw: bytes) -> str:
    """A GUID stored little-endian in its first three fields (GPT, btrfs is plain)."""
    a, b, c = struct.unpack_from("<IHH", raw)
    return f"{a:08x}-{b:04x}-{c:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


def _uuid(raw: bytes) -> str | None:
    if not any(raw):
        return None
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _label(raw: bytes) -> str | None:
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace").rstrip(" ")
    return text or None


def _probe_ext(buf: bytes) -> FsInfo | None:
    sb = buf[1024:2048]
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 56)[0] != 0xEF53:
        return None
    compat, incompat = struct.unpack_from("<II", sb, 92)
    if incompat & 0x8:  # an external journal device, not a filesystem
        return FsInfo("jbd", _uuid(sb[104:120]), _label(sb[120:136]))
    if incompat & (0x40 | 0x80 | 0x200) or incompat & ~0x1F:
        fstype = "ext4"  # extents, 64bit, flex_bg or anything ext3 does not know
    else:
        fstype = "ext3" if compat & 0x4 else "ext2"
    return FsInfo(fstype, _uuid(sb[104:120]), _label(sb[120:136]))


def _probe_fat(buf: bytes) -> FsInfo | None:
    if len(buf) < 512 or buf[510:512] != b"\x55\xaa":
        return None
    if buf[82:87] == b"FAT32":
        vid_at, label_at = 67, 71
    elif buf[54:57] == b"FAT":
        vid_at, label_at = 39, 43
    else:
        return None
    vid = struct.unpack_from("<I", buf, vid_at)[0]
    label = _label(buf[label_at : label_at + 11])
    return FsInfo(
        "vfat", f"{vid >> 16:04X}-{vid & 0xFFFF:04X}", None if label == "NO NAME" else label
    )


def probe_bytes(buf: bytes) -> FsInfo | None:
    """Recognise a filesystem from the first ~68 KiB of a device."""
    if buf[:4] == b"XFSB":
        return FsInfo("xfs", _uuid(buf[32:48]), _label(buf[108:120]))
    if buf[:4] == b"hsqs":
        return FsInfo("squashfs")
    if buf[0x10040:0x10048] == b"_BHRfS_M":
        return FsInfo("btrfs", _uuid(buf[0x10020:0x10030]), _label(buf[0x1012B:0x1022B]))
    if buf[1024:1028] == b"\xe2\xe1\xf5\xe0":
        return FsInfo(
            "erofs", _uuid(buf[1024 + 48 : 1024 + 64]), _label(buf[1024 + 64 : 1024 + 80])
        )
    return _probe_ext(buf) or _probe_fat(buf)


def probe(dev_path: str, offset: int = 0) -> FsInfo | None:
    """The filesystem at ``offset`` bytes into a device or image; None if unknown."""
    try:
        return probe_bytes(_read(dev_path, offset, _PROBE_SIZE))
    except OSError:
        return None


# ----------------------------------------------------------- partition tables


def read_gpt(path: str, sector: int = 512) -> tuple[PartInfo, ...] | None:
    """GPT partitions (header at LBA 1); None if there is no GPT header."""
    hdr = _read(path, sector, 92)
    if hdr[:8] != b"EFI PART":
        return None
    entries_lba, count, entry_size = struct.unpack_from("<QII", hdr, 72)
    # Bounded so a corrupt header cannot ask for terabytes or an offset > off_t.
    if not 128 <= entry_size <= 4096 or count > 1024 or entries_lba > 1 << 40:
        return None
    table = _read(path, entries_lba * sector, count * entry_size)
    parts: list[PartInfo] = []
    for i in range(len(table) // entry_size):
        e = table[i * entry_size : (i + 1) * entry_size]
        if not any(e[:16]):  # an unused slot: the type GUID is zero
            continue
        first, last = struct.unpack_from("<QQ", e, 32)
        name = e[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        start, size = first * sector, (last - first + 1) * sector
        parts.append(PartInfo(i + 1, _guid(e[16:32]), name or None, start, size))
    return tuple(parts)


_MBR_EXTENDED = (0x05, 0x0F, 0x85)


def _mbr_entries(sector: bytes) -> list[tuple[int, int, int]]:
    """(type, start LBA, sectors) of the four slots of one MBR/EBR sector."""
    out = []
    for i in range(4):
        ptype = sector[446 + 16 * i + 4]
        start, count = struct.unpack_from("<II", sector, 446 + 16 * i + 8)
        out.append((ptype, start, count))
    return out


def read_mbr(path: str) -> tuple[PartInfo, ...] | None:
    """MBR partitions with PARTUUID ``SSSSSSSS-PP``; None without a signature."""
    mbr = _read(path, 0, 512)
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        return None
    sig = struct.unpack_from("<I", mbr, 440)[0]
    parts: list[PartInfo] = []
    extended = None
    for i, (ptype, start, count) in enumerate(_mbr_entries(mbr)):
        if ptype == 0:
            continue
        if ptype in _MBR_EXTENDED:
            extended = start
        parts.append(PartInfo(i + 1, f"{sig:08x}-{i + 1:02x}", None, start * 512, count * 512))
    if extended is not None:
        parts += _logical_parts(path, sig, extended)
    return tuple(parts)


def _logical_parts(path: str, sig: int, ext_start: int) -> list[PartInfo]:
    """Walk the EBR chain; logical partitions are numbered from 5."""
    parts: list[PartInfo] = []
    ebr_lba = ext_start
    for number in range(5, 5 + 128):  # bounded: a looping chain must not hang boot
        ebr = _read(path, ebr_lba * 512, 512)
        if len(ebr) < 512 or ebr[510:512] != b"\x55\xaa":
            break
        (t1, s1, c1), (t2, s2, _c2) = _mbr_entries(ebr)[:2]
        if t1:
            start = (ebr_lba + s1) * 512
            parts.append(PartInfo(number, f"{sig:08x}-{number:02x}", None, start, c1 * 512))
        if t2 not in _MBR_EXTENDED or not s2:
            break
        ebr_lba = ext_start + s2
    return parts


def read_partitions(path: str) -> tuple[PartInfo, ...]:
    """GPT if present (also behind a protective MBR), else MBR, else nothing."""
    try:
        for sector in (512, 4096):
            gpt = read_gpt(path, sector)
            if gpt is not None:
                return gpt
        return read_mbr(path) or ()
    except OSError:
        return ()
