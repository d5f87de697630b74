"""A BIOS/MBR disk image that boots with Debian's GRUB, built without loop devices.

grub-install and grub-bios-setup work on block devices (grub-bios-setup
also guesses the root device of its own directory, which fails in a
container), so the disk is made from files: an MBR partition table
(sfdisk), one ext4 partition written in place (``mkfs.ext4 -E offset= -d``),
a core.img from grub-mkimage with the modules built in, and boot.img and
core.img placed where grub-bios-setup places them on an MBR disk: boot.img
in sector 0 around the partition table, core.img in the gap after it.
What boots is Debian's GRUB, reading the grub.cfg on the partition.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

GRUB_DIR = Path("/usr/lib/grub/i386-pc")
SECTOR = 512
PART_START = 2048  # sectors: the usual 1 MiB alignment leaves the gap for core.img
MODULES = (
    "biosdisk", "part_msdos", "ext2", "normal", "linux", "search", "search_label",
    "search_fs_uuid", "serial", "terminal", "echo", "test", "configfile",
)  # fmt: skip
# boot.img fields (grub-core/boot/i386/pc/boot.S)
KERNEL_SECTOR = 0x5C  # 8 bytes: LBA of core.img's first sector
DRIVE_CHECK = 0x66  # 2 bytes: a jump only floppies need; NOPs on a hard disk
MBR_KEEP = slice(0x1B8, 0x1FE)  # disk signature and partition table


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")


def make(out: Path, stage: Path, label: str, size_mb: int = 192) -> Path:
    """``stage`` as the ext4 partition ``label`` of a GRUB-booted disk at ``out``."""
    out.unlink(missing_ok=True)
    with open(out, "wb") as f:
        f.truncate(size_mb << 20)
    table = f"label: dos\nstart={PART_START}, type=83, bootable\n"
    subprocess.run(["sfdisk", "-q", str(out)], input=table.encode(), check=True)
    part_kib = size_mb * 1024 - PART_START * SECTOR // 1024
    _run(
        "mkfs.ext4", "-q", "-F", "-L", label, "-E", f"offset={PART_START * SECTOR}",
        "-d", str(stage), str(out), f"{part_kib}k",
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mosnet-grub-") as tmp:
        core = Path(tmp) / "core.img"
        _run(
            "grub-mkimage", "-O", "i386-pc", "-o", str(core),
            "-p", "(hd0,msdos1)/boot/grub", *MODULES,
        )  # fmt: skip
        embed(out, core.read_bytes(), (GRUB_DIR / "boot.img").read_bytes())
    return out


def embed(disk: Path, core: bytes, boot: bytes) -> None:
    """boot.img into the MBR (its partition table kept), core.img from sector 1."""
    sectors = -(-len(core) // SECTOR)
    if len(boot) != SECTOR or 1 + sectors > PART_START:
        raise ValueError(f"core.img of {sectors} sectors does not fit before the partition")
    # diskboot.img (core.img's first sector) loads the rest from the sector
    # after it: grub-mkimage's default blocklist, start 2, is right here.
    start, length, _ = struct.unpack_from("<QHH", core, SECTOR - 12)
    if (start, length) != (2, sectors - 1):
        raise ValueError(f"unexpected core.img blocklist {start},{length}")
    with open(disk, "r+b") as f:
        mbr = bytearray(boot)
        mbr[MBR_KEEP] = f.read(SECTOR)[MBR_KEEP]
        mbr[DRIVE_CHECK : DRIVE_CHECK + 2] = b"\x90\x90"
        struct.pack_into("<Q", mbr, KERNEL_SECTOR, 1)
        f.seek(0)
        f.write(mbr)
        f.write(core)


def ext4_contents(image: Path, into: Path) -> Path:
    """Copy an ext4 image's files into a directory (debugfs, no mount)."""
    into.mkdir(parents=True, exist_ok=True)
    _run("debugfs", "-R", f"rdump / {into}", str(image))
    shutil.rmtree(into / "lost+found", ignore_errors=True)
    if not any(into.iterdir()):  # debugfs exits 0 even when it cannot open the image
        raise RuntimeError(f"debugfs found no files in {image}")
    return into
