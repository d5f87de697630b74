"""The pure parts of bench/size/: newc walking, parts, cuts, Nuitka tables."""

from __future__ import annotations

import io
import pickle
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
import zstandard

from bench.size import bytecode, cuts, image, newc, report
from initramfs.cpio import CpioEntry, write_newc

REG = stat.S_IFREG | 0o644


def archive(*entries: CpioEntry) -> bytes:
    buf = io.BytesIO()
    write_newc(buf, entries, 0)
    return buf.getvalue()


def sample() -> bytes:
    return archive(
        CpioEntry("bin", stat.S_IFDIR | 0o755),
        CpioEntry("bin/busybox", REG | 0o755, data=b"B" * 5),
        CpioEntry("bin/sh", stat.S_IFLNK | 0o777, data=b"busybox"),
        CpioEntry("usr/lib/mosnet/mosnet-init.bin", REG, data=b"N" * 10),
        CpioEntry("lib/modules/6.1/kernel/a.ko", REG, data=b"K" * 3),
    )


def test_walk_newc_gives_names_sizes_and_record_bounds() -> None:
    buf = sample()
    members, end = newc.walk_newc(buf)
    assert end == len(buf)
    names = [m.name for m in members]
    assert names == sorted(names) and "TRAILER!!!" not in names
    bb = next(m for m in members if m.name == "bin/busybox")
    assert (bb.size, buf[bb.data : bb.data + bb.size]) == (5, b"BBBBB")
    assert bb.start % 4 == 0 and bb.end % 4 == 0 and bb.data % 4 == 0
    link = next(m for m in members if m.name == "bin/sh")
    assert stat.S_ISLNK(link.mode) and not link.is_file
    # records follow each other with no gap
    assert all(a.end == b.start for a, b in zip(members, members[1:], strict=False))


def test_walk_newc_rejects_garbage_and_truncation() -> None:
    with pytest.raises(newc.SizeError, match="no newc header"):
        newc.walk_newc(b"070702" + b"0" * 200)
    buf = sample()
    with pytest.raises(newc.SizeError):
        newc.walk_newc(buf[: len(buf) // 2])


def test_archives_with_padding_and_mixed_compression() -> None:
    a = sample()
    b = archive(CpioEntry("usr/sbin/ovsdb-server", REG, data=b"O" * 7))
    plain = a + b"\0" * 12 + b
    assert [len(x) for x in newc.walk_archives(plain)] == [5, 1]
    blob = (
        zstandard.ZstdCompressor().compress(a)
        + b"\0" * 4
        + zstandard.ZstdCompressor(level=3).compress(b)
    )
    segs = newc.split_image(blob)
    assert [s.fmt for s in segs] == ["zstd", "zstd"]
    assert [s.plain for s in segs] == [a, b]
    assert sum(s.stored for s in segs) == len(blob) - 4
    # an uncompressed archive first (early microcode style), then a compressed one
    segs = newc.split_image(b + zstandard.ZstdCompressor().compress(a))
    assert [s.fmt for s in segs] == ["newc", "zstd"] and segs[0].plain == b
    with pytest.raises(newc.SizeError, match="unknown data"):
        newc.split_image(b"PK\x03\x04junk")


def test_records_rebuild_a_valid_archive_without_members() -> None:
    buf = sample()
    members, _ = newc.walk_newc(buf)
    assert newc.records(buf, members) == buf
    kept = [m for m in members if cuts.part_of(m.name) != "modules"]
    smaller = newc.records(buf, kept)
    again, end = newc.walk_newc(smaller)
    assert end == len(smaller)
    assert [m.name for m in again] == [m.name for m in kept]


def test_with_content_fixes_the_size_field() -> None:
    buf = sample()
    members, _ = newc.walk_newc(buf)
    out = newc.with_content(buf, members, "usr/lib/mosnet/mosnet-init.bin", b"xyz")
    again, _ = newc.walk_newc(out)
    m = next(m for m in again if m.name.endswith("mosnet-init.bin"))
    assert (m.size, out[m.data : m.data + m.size]) == (3, b"xyz")
    assert next(x for x in again if x.name == "bin/busybox").size == 5


def test_cut_ranges() -> None:
    assert newc.cut_ranges(b"0123456789", [(7, 9), (1, 3)]) == b"03456" + b"9"
    assert newc.cut_ranges(b"abc", []) == b"abc"
    with pytest.raises(ValueError):
        newc.cut_ranges(b"abc", [(0, 2), (1, 3)])
    with pytest.raises(ValueError):
        newc.cut_ranges(b"abc", [(2, 9)])


def test_parts_match_the_build_report_rules() -> None:
    assert cuts.part_of("usr/lib/mosnet/_socket.so") == "dist"
    assert cuts.part_of("lib/modules/6.1.0/kernel/fs/xfs/xfs.ko") == "modules"
    assert cuts.part_of("bin/busybox") == cuts.part_of("sbin/modprobe") == "busybox"
    assert cuts.part_of("mosnet-init") == "preinit"
    assert cuts.part_of("init") == "other"  # a symlink the build files under other
    assert cuts.part_of("usr/sbin/nft") == "other"
    assert cuts.part_of("lib/x86_64-linux-gnu/libc.so.6") == "libraries"
    assert cuts.part_of("etc/passwd") == "other"
    assert cuts.addon_part_of("usr/sbin/ovsdb-server") == "daemons"
    assert cuts.addon_part_of("usr/bin/ovs-vsctl") == "tools"
    assert cuts.addon_part_of("usr/share/openvswitch/vswitch.ovsschema") == "schema"
    assert cuts.addon_part_of("usr/lib/x86_64-linux-gnu/libssl.so.3") == "libraries"
    members, _ = newc.walk_newc(sample())
    # file and symlink-target bytes, directories count nothing
    assert cuts.sizes_by_part(members, cuts.part_of) == {
        "busybox": 5 + 7,
        "dist": 10,
        "modules": 3,
        "other": 0,
    }


def test_exclusive_modules_keeps_shared_dependencies() -> None:
    deps = {
        "mlx5_core": ("mlxfw", "psample", "tls"),
        "tls": (),
        "mlxfw": (),
        "psample": (),
        "openvswitch": ("psample_not_here", "nsh"),
        "act_sample": ("psample",),
        "nsh": (),
    }
    present = deps.keys()
    assert cuts.exclusive_modules(deps, present, ["mlx5_core"]) == {
        "mlx5_core",
        "mlxfw",
        "tls",
    }
    assert cuts.exclusive_modules(deps, present, ["mlx5_core", "act_sample"]) == {
        "mlx5_core",
        "mlxfw",
        "tls",
        "act_sample",
        "psample",
    }
    assert cuts.exclusive_modules(deps, present, ["not_there"]) == set()
    # transitive: a -> b -> c, nothing else needs b or c
    chain = {"a": ("b",), "b": ("c",), "c": (), "d": ()}
    assert cuts.exclusive_modules(chain, chain, ["a"]) == {"a", "b", "c"}


LOADER = """
static struct Nuitka_MetaPathBasedLoaderEntry meta_path_loader_entries[] = {
    {
    "__future__", NULL, NULL, NULL, NULL, NULL, NULL, NULL, IMPORT_EMBEDDED_MODULE_ENTRY, &module_state___future__, &module_owner___future__, 0, 4875, NUITKA_BYTECODE_FLAG
    },
    {
    "mosnet.config.cmdline", MOD_INIT_NAME(mosnet$cmdline), NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NUITKA_TRANSLATED_FLAG
    },
    {
    "pyroute2.netlink", NULL, NULL, NULL, NULL, NULL, &entry_pyroute2, NULL, IMPORT_EMBEDDED_MODULE_ENTRY, &module_state_pyroute2$netlink, &module_owner_pyroute2$netlink, 1, 389, NUITKA_BYTECODE_FLAG | NUITKA_PACKAGE_FLAG
    },
"""  # noqa: E501


def test_parse_loader_and_grouping() -> None:
    rows = bytecode.parse_loader(LOADER)
    assert rows == [("__future__", 0, 4875), ("pyroute2.netlink", 1, 389)]
    mods = [("pyroute2.netlink", 0, 389), ("pyroute2.iproute", 400, 1000), ("email.x", 9, 50)]
    assert list(bytecode.group_bytecode(mods).items()) == [("pyroute2", 1389), ("email", 50)]


class BlobData:  # what Nuitka pickles (NEWOBJ + state); the reader must not import it
    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name

    def __getstate__(self) -> Any:
        return (None, {"data": self.data, "name": self.name})


def test_nuitka_bytecode_found_in_the_binary(tmp_path: Path) -> None:
    blobs = [b"\xe3first-module-code", b"\xe3second-module-code!"]
    with (tmp_path / "__bytecode.const").open("wb") as f:
        for i, b in enumerate(blobs):
            pickle.dump(BlobData(b, f"m{i}"), f, protocol=5)
    (tmp_path / "__loader.c").write_text(
        f'    "a.x", NULL, 0, {len(blobs[0])}, NUITKA_BYTECODE_FLAG\n'
        f'    "b", NULL, 1, {len(blobs[1])}, NUITKA_BYTECODE_FLAG\n'
    )
    binary = b"ELF..." + blobs[0] + b"pad" + blobs[1] + b"end"
    got = bytecode.nuitka_bytecode(binary, tmp_path)
    assert got == [("a.x", 6, len(blobs[0])), ("b", 6 + len(blobs[0]) + 3, len(blobs[1]))]
    # another build: a blob missing from the binary means "unknown", not a guess
    assert bytecode.nuitka_bytecode(b"ELF..." + blobs[0], tmp_path) == []
    assert bytecode.nuitka_bytecode(binary, tmp_path / "nope") == []


def test_nuitka_reader_refuses_other_classes(tmp_path: Path) -> None:
    with (tmp_path / "__bytecode.const").open("wb") as f:
        pickle.dump(Path("/etc"), f)
    (tmp_path / "__loader.c").write_text('"a", NULL, 0, 1, NUITKA_BYTECODE_FLAG\n')
    assert bytecode.nuitka_bytecode(b"x", tmp_path) == []


def elf64(sections: list[tuple[str, int, bytes]]) -> bytes:
    """A minimal ELF64 LE file: a header, the section bytes, a string table, headers."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n, _, _ in sections) + b".shstrtab\0"
    body = b"".join(d for _, _, d in sections)
    data_off = 64
    str_off = data_off + len(body)
    sh_off = str_off + len(names)
    heads = [struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    pos, name_pos = data_off, 1
    for name, kind, data in sections:
        heads.append(struct.pack("<IIQQQQIIQQ", name_pos, kind, 0, 0, pos, len(data), 0, 0, 1, 0))
        pos += len(data)
        name_pos += len(name) + 1
    heads.append(struct.pack("<IIQQQQIIQQ", name_pos, 3, 0, 0, str_off, len(names), 0, 0, 1, 0))
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    head = ident + struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, sh_off, 0, 64, 56, 0, 64, len(heads), len(heads) - 1
    )
    return head + body + names + b"".join(heads)


def test_elf_sections() -> None:
    data = elf64([(".text", 1, b"T" * 40), (".bss", 8, b""), (".rodata", 1, b"R" * 24)])
    got = bytecode.elf_sections(data)
    assert [(n, s) for n, _, s in got] == [(".text", 40), (".rodata", 24), (".shstrtab", 30)]
    off = dict((n, o) for n, o, _ in got)
    assert data[off[".rodata"] : off[".rodata"] + 24] == b"R" * 24
    with pytest.raises(ValueError):
        bytecode.elf_sections(b"\x7fELF\x01\x01" + b"\0" * 60)


def test_report_shows_targets_and_misses() -> None:
    section = {
        "targets": {"default": 15_000_000, "ovs": 25_000_000},
        "images": {
            "default": {"compressed": 19_800_000, "unpacked": 73e6, "file_bytes": 72e6, "files": 9},
            "ovs": {"compressed": 24_000_000, "unpacked": 99e6, "file_bytes": 98e6, "files": 20},
        },
        "references": {"dracut-generic": {"unavailable": "no network"}},
    }
    text = image.report(section)
    assert "misses by 4.80 MB" in text
    assert "<= 25: meets" in text
    assert "unavailable: no network" in text


def test_unmapped_dist_lists_only_dist_shared_objects_not_seen() -> None:
    data = archive(
        CpioEntry("usr/lib/mosnet/mosnet-init.bin", REG, data=b"N" * 10),
        CpioEntry("usr/lib/mosnet/_socket.so", REG, data=b"S" * 4),
        CpioEntry("usr/lib/mosnet/_codecs_jp.so", REG, data=b"J" * 8),
        CpioEntry("usr/lib/mosnet/libffi.so.8", REG, data=b"F" * 2),
        CpioEntry("lib/x86_64-linux-gnu/libnftables.so.1", REG, data=b"L" * 9),
    )
    img = newc.Image("t", Path("/nonexistent"), data, newc.split_image(data))
    mapped = ["/usr/lib/mosnet/mosnet-init.bin", "/usr/lib/mosnet/_socket.so"]
    assert cuts.unmapped_dist(img, mapped) == [
        {"path": "/usr/lib/mosnet/_codecs_jp.so", "bytes": 8},
        {"path": "/usr/lib/mosnet/libffi.so.8", "bytes": 2},
    ]


def test_short_labels_fit_the_chart() -> None:
    assert report.short_label("modules: xfs") == "ko: xfs"
    assert report.short_label("modules: mlx5_core (+3 deps only they need)") == "ko: mlx5_core"
    assert report.short_label("modules: 100G/40G NICs: mlx5_core, ice") == "ko: 100G/40G NICs"
    assert report.short_label("mosnet-init.bin: all embedded bytecode") == "bin: all bytecode"
    assert report.short_label("dist: TLS: libcrypto, libssl, _ssl, _hashlib") == "dist: TLS"
    assert len(report.short_label("x" * 80)) == 27
