"""newc writer: golden bytes, determinism, and GNU cpio as an independent reader."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from initramfs.cpio import CpioEntry, CpioError, write_newc

EPOCH = 1700000000  # 0x6553F100

# Given out of order on purpose: the writer must sort them.
TINY = [
    CpioEntry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3)),
    CpioEntry("a/f", stat.S_IFREG | 0o644, b"hi\n"),
    CpioEntry("a/l", stat.S_IFLNK | 0o777, b"f"),
    CpioEntry("a", stat.S_IFDIR | 0o755),
]

# Fields: magic ino mode uid gid nlink mtime size devmaj devmin rdevmaj rdevmin namesize check
GOLDEN = (
    b"070701" b"00000001" b"000041ED" b"00000000" b"00000000" b"00000002" b"6553F100"
    b"00000000" b"00000000" b"00000000" b"00000000" b"00000000" b"00000002" b"00000000"
    b"a\x00"  # 110 + 2 = 112: no padding, no data
    b"070701" b"00000002" b"000081A4" b"00000000" b"00000000" b"00000001" b"6553F100"
    b"00000003" b"00000000" b"00000000" b"00000000" b"00000000" b"00000004" b"00000000"
    b"a/f\x00" b"\x00\x00"  # 114 -> 116
    b"hi\n" b"\x00"  # 3 -> 4
    b"070701" b"00000003" b"0000A1FF" b"00000000" b"00000000" b"00000001" b"6553F100"
    b"00000001" b"00000000" b"00000000" b"00000000" b"00000000" b"00000004" b"00000000"
    b"a/l\x00" b"\x00\x00"
    b"f" b"\x00\x00\x00"
    b"070701" b"00000004" b"000021B6" b"00000000" b"00000000" b"00000001" b"6553F100"
    b"00000000" b"00000000" b"00000000" b"00000001" b"00000003" b"00000009" b"00000000"
    b"dev/null\x00" b"\x00"  # 119 -> 120
    b"070701" b"00000000" b"00000000" b"00000000" b"00000000" b"00000001" b"00000000"
    b"00000000" b"00000000" b"00000000" b"00000000" b"00000000" b"0000000B" b"00000000"
    b"TRAILER!!!\x00" b"\x00\x00\x00"
)  # fmt: skip


def archive(entries: list[CpioEntry], epoch: int = EPOCH) -> bytes:
    buf = io.BytesIO()
    size = write_newc(buf, entries, epoch)
    assert size == len(buf.getvalue())
    return buf.getvalue()


def test_golden_bytes() -> None:
    assert archive(TINY) == GOLDEN


def test_same_input_same_bytes_and_aligned() -> None:
    first = archive(TINY)
    assert archive(list(reversed(TINY))) == first
    assert len(first) % 4 == 0


def test_epoch_is_every_mtime() -> None:
    data = archive(TINY, epoch=0x12345678)
    assert data.count(b"12345678") == len(TINY)


def test_mode_keeps_type_and_special_bits_only() -> None:
    # 0o104755: regular file, setuid, rwxr-xr-x
    data = archive([CpioEntry("su", stat.S_IFREG | 0o4755)])
    assert data[14:22] == b"000089ED"


def test_source_file_is_streamed(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(b"x" * 5)
    from_file = archive([CpioEntry("f", stat.S_IFREG | 0o644, source=src)])
    from_data = archive([CpioEntry("f", stat.S_IFREG | 0o644, b"x" * 5)])
    assert from_file == from_data


@pytest.mark.parametrize(
    "entries",
    [
        [CpioEntry("a", stat.S_IFREG | 0o644), CpioEntry("a", stat.S_IFDIR | 0o755)],
        [CpioEntry("/abs", stat.S_IFREG | 0o644)],
        [CpioEntry("", stat.S_IFREG | 0o644)],
        [CpioEntry("fifo", stat.S_IFIFO | 0o644)],
        [CpioEntry("d", stat.S_IFDIR | 0o755, source=Path("/etc/hostname"))],
    ],
)
def test_rejects_bad_entries(entries: list[CpioEntry]) -> None:
    with pytest.raises(CpioError):
        archive(entries)


CPIO = shutil.which("cpio")
needs_cpio = pytest.mark.skipif(CPIO is None, reason="GNU cpio not installed")


@needs_cpio
def test_gnu_cpio_lists_entries() -> None:
    assert CPIO is not None
    out = subprocess.run(
        [CPIO, "-t", "-v", "--quiet"], input=archive(TINY), capture_output=True, check=True
    ).stdout.decode()
    lines = out.splitlines()
    assert [line.split()[-1] for line in lines] == ["a", "a/f", "f", "dev/null"]
    assert lines[0].startswith("drwxr-xr-x")
    assert lines[2].startswith("lrwxrwxrwx") and "a/l -> f" in lines[2]
    assert lines[3].startswith("crw-rw-rw-") and "1," in lines[3] and " 3 " in lines[3]


@needs_cpio
def test_gnu_cpio_extracts_contents_links_and_modes(tmp_path: Path) -> None:
    assert CPIO is not None
    entries = [
        CpioEntry("bin/tool", stat.S_IFREG | 0o750, b"#!/bin/sh\n"),
        CpioEntry("bin/alias", stat.S_IFLNK | 0o777, b"tool"),
        CpioEntry("etc/conf", stat.S_IFREG | 0o600, b"k=v\n"),
        CpioEntry("tmp", stat.S_IFDIR | 0o1777),
        CpioEntry("bin", stat.S_IFDIR | 0o755),
        CpioEntry("etc", stat.S_IFDIR | 0o755),
    ]
    subprocess.run(
        [CPIO, "-i", "-d", "-m", "--quiet", "--no-absolute-filenames"],
        input=archive(entries),
        cwd=tmp_path,
        check=True,
    )
    assert (tmp_path / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((tmp_path / "bin/tool").stat().st_mode) == 0o750
    assert (tmp_path / "bin/alias").readlink() == Path("tool")
    assert (tmp_path / "etc/conf").read_bytes() == b"k=v\n"
    assert stat.S_IMODE((tmp_path / "etc/conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tmp").stat().st_mode) == 0o1777
    assert (tmp_path / "bin/tool").stat().st_mtime == EPOCH
