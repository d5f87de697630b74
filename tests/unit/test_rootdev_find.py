"""init.rootdev: finding the root device in a fake sysfs, and waiting for it."""

from __future__ import annotations

import pathlib

import pytest

from init import rootdev
from init.bootcfg import RootSpec
from init.rootdev import RootNotFound
from tests.unit.helpers.rootdev_images import EXT_UUID, P1_UUID

# pytest fixtures, imported by name so that pytest finds them in this module
from tests.unit.helpers.rootdev_images import ext4_img as ext4_img
from tests.unit.helpers.rootdev_images import gpt_img as gpt_img
from tests.unit.helpers.rootdev_images import images as images
from tests.unit.helpers.rootdev_images import mbr_img as mbr_img


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
