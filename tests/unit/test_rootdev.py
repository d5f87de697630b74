from __future__ import annotations

import errno
import os
import pathlib
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from init import blkid, rootdev, syscalls
from init.bootcfg import RootSpec
from init.rootdev import FsInfo, RootMountError, RootNotFound

EXT_UUID = "0a1b2c3d-4e5f-4a6b-8c7d-0123456789ab"
XFS_UUID = "11111111-2222-4333-8444-555555555555"
GPT_DISK = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
P1_UUID = "0fc63daf-0000-4000-8000-000000000001"
P2_UUID = "0fc63daf-0000-4000-8000-000000000002"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def sparse(path: pathlib.Path, size: int) -> pathlib.Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("img")


@pytest.fixture(scope="module")
def ext4_img(images: pathlib.Path) -> pathlib.Path:
    img = sparse(images / "ext4.img", 8 << 20)
    run(tool("mkfs.ext4"), "-q", "-F", "-U", EXT_UUID, "-L", "rootfs", str(img))
    return img


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


def _copy_into(disk: pathlib.Path, fs: pathlib.Path, offset: int) -> None:
    with open(disk, "r+b") as out, open(fs, "rb") as src:
        out.seek(offset)
        out.write(src.read(2 << 20))  # superblocks are in the first MiB


@pytest.fixture(scope="module")
def gpt_img(images: pathlib.Path, ext4_img: pathlib.Path) -> pathlib.Path:
    disk = sparse(images / "gpt.img", 32 << 20)
    script = (
        f"label: gpt\nlabel-id: {GPT_DISK}\n"
        f'start=2048, size=16384, type={LINUX_FS}, uuid={P1_UUID.upper()}, name="system"\n'
        f'start=18432, size=8192, type={LINUX_FS}, uuid={P2_UUID}, name="data"\n'
    )
    run(tool("sfdisk"), "-q", str(disk), stdin=script)
    _copy_into(disk, ext4_img, 2048 * 512)
    return disk


@pytest.fixture(scope="module")
def mbr_img(images: pathlib.Path) -> pathlib.Path:
    disk = sparse(images / "mbr.img", 32 << 20)
    script = (
        "label: dos\nlabel-id: 0x1234abcd\n"
        "start=2048, size=8192, type=83\n"
        "start=10240, size=40000, type=5\n"
        "start=12288, size=4096, type=83\n"
        "start=18432, size=4096, type=83\n"
    )
    run(tool("sfdisk"), "-q", str(disk), stdin=script)
    return disk


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


# ------------------------------------------------------------- fake sysfs


class FakeSys:
    """A /sys/class/block tree laid out like the kernel's, plus a devdir of images."""

    def __init__(self, root: pathlib.Path) -> None:
        self.sysfs = root / "sys"
        self.devdir = root / "dev"
        (self.sysfs / "class" / "block").mkdir(parents=True)
        self.devdir.mkdir()
        self.devices = self.sysfs / "devices" / "pci0000:00" / "virtio1" / "block"

    def add(
        self,
        name: str,
        image: pathlib.Path | None,
        devnum: str,
        parent: str | None = None,
        partno: int | None = None,
        size: int = 1000,
    ) -> None:
        base = self.devices / parent / name if parent else self.devices / name
        base.mkdir(parents=True)
        (base / "dev").write_text(devnum + "\n")
        (base / "size").write_text(f"{size}\n")
        if partno is not None:
            (base / "partition").write_text(f"{partno}\n")
        (self.sysfs / "class" / "block" / name).symlink_to(base)
        if image is not None:
            (self.devdir / name).symlink_to(image)

    def find(self, spec: RootSpec) -> str | None:
        return rootdev.find(spec, str(self.sysfs), str(self.devdir))


@pytest.fixture
def fake(
    tmp_path: pathlib.Path, gpt_img: pathlib.Path, ext4_img: pathlib.Path, mbr_img: pathlib.Path
) -> FakeSys:
    fs = FakeSys(tmp_path)
    fs.add("vda", gpt_img, "254:0")
    fs.add("vda1", ext4_img, "254:1", parent="vda", partno=1)
    fs.add("vda2", None, "254:2", parent="vda", partno=2)
    fs.add("sdb", mbr_img, "8:16")
    fs.add("sdb5", None, "8:21", parent="sdb", partno=5)
    fs.add("loop0", None, "7:0", size=0)
    return fs


def test_find_by_every_kind(fake: FakeSys) -> None:
    vda1 = str(fake.devdir / "vda1")
    assert fake.find(RootSpec("uuid", EXT_UUID.upper())) == vda1
    assert fake.find(RootSpec("label", "rootfs")) == vda1
    assert fake.find(RootSpec("label", "ROOTFS")) is None  # labels are exact
    assert fake.find(RootSpec("partuuid", P1_UUID.upper())) == vda1
    assert fake.find(RootSpec("partlabel", "data")) == str(fake.devdir / "vda2")
    assert fake.find(RootSpec("partuuid", "1234abcd-05")) == str(fake.devdir / "sdb5")
    assert fake.find(RootSpec("devnum", "254:2")) == str(fake.devdir / "vda2")
    assert fake.find(RootSpec("path", "/dev/vda1")) == vda1
    assert fake.find(RootSpec("path", "/dev/vdz")) is None
    assert fake.find(RootSpec("uuid", "ffffffff")) is None
    assert fake.find(RootSpec("nfs", "x:/y")) is None
    assert fake.find(RootSpec()) is None


def test_find_partnroff_and_by_paths(fake: FakeSys) -> None:
    assert fake.find(RootSpec("partuuid", P1_UUID, 1)) == str(fake.devdir / "vda2")
    assert fake.find(RootSpec("partuuid", P1_UUID, 5)) is None
    by = RootSpec("path", f"/dev/disk/by-uuid/{EXT_UUID}")
    assert fake.find(by) == str(fake.devdir / "vda1")
    by = RootSpec("path", "/dev/disk/by-partlabel/data")
    assert fake.find(by) == str(fake.devdir / "vda2")


def test_scan_skips_empty_devices(fake: FakeSys) -> None:
    names = [d.name for d in rootdev.scan(str(fake.sysfs), str(fake.devdir))]
    assert names == ["sdb", "sdb5", "vda", "vda1", "vda2"]


def test_parent_disk_without_symlinks(tmp_path: pathlib.Path) -> None:
    (tmp_path / "class" / "block" / "nvme0n1p2").mkdir(parents=True)
    (tmp_path / "class" / "block" / "nvme0n1").mkdir(parents=True)
    assert rootdev._parent_disk(str(tmp_path), "nvme0n1p2") == "nvme0n1"
    assert rootdev._parent_disk(str(tmp_path), "sda3") == "sda"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_times_out_listing_devices(fake: FakeSys) -> None:
    clock = FakeClock()
    spec = RootSpec("uuid", "deadbeef-0000-0000-0000-000000000000")
    with pytest.raises(RootNotFound) as info:
        rootdev.wait_for(spec, 1.0, clock, clock.sleep, str(fake.sysfs), str(fake.devdir))
    text = str(info.value)
    assert "UUID=deadbeef-0000-0000-0000-000000000000 not found" in text
    assert "gave up after 1 s" in text
    assert f"vda1 (254:1) ext4 UUID={EXT_UUID} LABEL='rootfs'" in text
    assert f"PARTUUID={P1_UUID} PARTLABEL='system'" in text
    assert "sdb5 (8:21) no known filesystem PARTUUID=1234abcd-05" in text
    assert len(info.value.seen) == 5
    assert 9 <= len(clock.sleeps) <= 11 and max(clock.sleeps) <= 0.1 + 1e-9


def test_wait_for_finds_late_device(fake: FakeSys, ext4_img: pathlib.Path) -> None:
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            fake.add("vdb", ext4_img, "254:16")

    spec = RootSpec("path", "/dev/vdb")
    found = rootdev.wait_for(spec, 5, clock, sleep, str(fake.sysfs), str(fake.devdir))
    assert found == str(fake.devdir / "vdb") and len(clock.sleeps) == 3


def test_wait_for_unsupported_fails_at_once(fake: FakeSys) -> None:
    clock = FakeClock()
    for spec, why in ((RootSpec(), "no root="), (RootSpec("nfs", "h:/p"), "NFS root needs")):
        with pytest.raises(RootNotFound, match=why):
            rootdev.wait_for(spec, 30, clock, clock.sleep, str(fake.sysfs), str(fake.devdir))
    assert clock.sleeps == []


def test_wait_for_no_devices(tmp_path: pathlib.Path) -> None:
    clock = FakeClock()
    with pytest.raises(RootNotFound, match="no block devices seen"):
        rootdev.wait_for(RootSpec("label", "x"), 0, clock, clock.sleep, str(tmp_path), "/dev")


# ----------------------------------------------------------------- mounting


def test_split_options() -> None:
    flags, ro, data = rootdev.split_options("noatime,data=ordered,rw,nodev,defaults")
    assert flags == syscalls.MS_NOATIME | syscalls.MS_NODEV
    assert ro is False and data == "data=ordered"
    assert rootdev.split_options(None) == (0, None, None)
    assert rootdev.split_options("ro")[1] is True


def test_fstype_order(tmp_path: pathlib.Path) -> None:
    pf = tmp_path / "filesystems"
    pf.write_text("nodev\tsysfs\nnodev\tproc\n\tvfat\n\text3\n\text2\n\text4\n\tsquashfs\n")
    avail = rootdev.block_fstypes(str(pf))
    assert avail == ["vfat", "ext3", "ext2", "ext4", "squashfs"]
    assert rootdev.fstype_order(None, avail) == ["ext4", "vfat", "squashfs", "ext3", "ext2"]
    assert rootdev.fstype_order("xfs", avail)[:2] == ["xfs", "ext4"]


class Recorder:
    def __init__(self, fail: dict[str, int]) -> None:
        self.calls: list[tuple[str, str, str, int, str | None]] = []
        self.fail = fail

    def __call__(self, src: str, tgt: str, fstype: str, flags: int, data: str | None) -> None:
        self.calls.append((src, tgt, fstype, flags, data))
        err = self.fail.get(fstype if not flags & syscalls.MS_RDONLY else fstype + ":ro")
        if err:
            raise OSError(err, os.strerror(err), tgt)


def test_mount_root_probes_and_falls_through(
    tmp_path: pathlib.Path, ext4_img: pathlib.Path
) -> None:
    pf = tmp_path / "filesystems"
    pf.write_text("nodev\tproc\n\tvfat\n\text4\n")
    rec = Recorder({"ext4:ro": errno.EINVAL})
    got = rootdev.mount_root(
        str(ext4_img), "/new", None, "noatime", True, proc_filesystems=str(pf), mount=rec
    )
    assert got == "vfat"
    assert [c[2] for c in rec.calls] == ["ext4", "vfat"]
    assert rec.calls[0][3] == syscalls.MS_RDONLY | syscalls.MS_NOATIME and rec.calls[0][4] is None


def test_mount_root_rw_falls_back_to_ro() -> None:
    rec = Recorder({"ext4": errno.EROFS})
    assert rootdev.mount_root("/dev/x", "/new", "ext4", None, False, mount=rec) == "ext4"
    assert [c[3] for c in rec.calls] == [0, syscalls.MS_RDONLY]


def test_mount_root_all_fail() -> None:
    rec = Recorder({"ext4:ro": errno.EINVAL, "xfs:ro": errno.ENODEV})
    with pytest.raises(RootMountError) as info:
        rootdev.mount_root("/dev/x", "/new", "ext4,xfs", "rw,ro", False, mount=rec)
    assert "ext4: Invalid argument" in str(info.value)
    assert "xfs: No such device" in str(info.value)


def test_mount_root_nothing_to_try(tmp_path: pathlib.Path) -> None:
    with pytest.raises(RootMountError, match="no block filesystem types"):
        rootdev.mount_root(
            str(tmp_path / "absent"), "/new", proc_filesystems="/nonexistent", mount=Recorder({})
        )


def test_sys_mount_reports_errno(tmp_path: pathlib.Path) -> None:
    # A nonexistent target gives ENOENT (or EPERM without CAP_SYS_ADMIN): either way an OSError.
    with pytest.raises(OSError) as info:
        syscalls.sys_mount("none", str(tmp_path / "absent"), "tmpfs", 0, None)
    assert info.value.errno in (errno.ENOENT, errno.EPERM)
    assert info.value.strerror == os.strerror(info.value.errno)
    assert info.value.filename == str(tmp_path / "absent")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_sys_mount_and_umount_tmpfs(tmp_path: pathlib.Path) -> None:
    try:
        syscalls.sys_mount("none", str(tmp_path), "tmpfs", syscalls.MS_NOSUID, "size=1m")
    except PermissionError:
        pytest.skip("no CAP_SYS_ADMIN here")
    try:
        (tmp_path / "f").write_text("x")
    finally:
        syscalls.sys_umount2(str(tmp_path), syscalls.MNT_DETACH)
    assert not (tmp_path / "f").exists()


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
