"""Find the root block device and mount it, without blkid or udev.

Superblocks and partition tables are read directly: the image has no blkid
and no udev, so /dev/disk/by-* does not exist either. Devices come from
/sys/class/block (devtmpfs provides the /dev nodes).
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from init import syscalls
from init.blkid import FsInfo, PartInfo, probe, read_partitions
from init.bootcfg import RootSpec
from mosnet.base import log
from mosnet.base.errors import MosnetError

__all__ = [
    "BlockDev",
    "FsInfo",
    "PartInfo",
    "RootMountError",
    "RootNotFound",
    "block_fstypes",
    "find",
    "find_in",
    "fstype_order",
    "mount_root",
    "probe",
    "read_partitions",
    "scan",
    "split_options",
    "wait_for",
]

_log = log.get("init.rootdev")

# Types tried when rootfstype= is absent, before anything else in /proc/filesystems.
PREFERRED_FSTYPES = ("ext4", "xfs", "btrfs", "vfat", "squashfs", "erofs", "f2fs", "iso9660")
POLL_INTERVAL = 0.1
_BY_DIR_KIND = {
    "/dev/disk/by-uuid/": "uuid",
    "/dev/disk/by-label/": "label",
    "/dev/disk/by-partuuid/": "partuuid",
    "/dev/disk/by-partlabel/": "partlabel",
}


@dataclass(frozen=True)
class BlockDev:
    name: str
    path: str
    devnum: str  # "MAJ:MIN"
    disk: str | None = None  # parent disk name if this is a partition
    partno: int | None = None
    fs: FsInfo | None = None
    part: PartInfo | None = None

    def describe(self) -> str:
        fs = self.fs
        text = f"{self.path} ({self.devnum}) {fs.fstype if fs else 'no known filesystem'}"
        if fs and fs.uuid:
            text += f" UUID={fs.uuid}"
        if fs and fs.label:
            text += f" LABEL={fs.label!r}"
        if self.part:
            text += f" PARTUUID={self.part.partuuid}"
            if self.part.partlabel:
                text += f" PARTLABEL={self.part.partlabel!r}"
        return text


class RootNotFound(MosnetError):
    """The root device did not appear; the message lists what did."""

    def __init__(self, spec: RootSpec, seen: tuple[BlockDev, ...], why: str = "") -> None:
        self.spec = spec
        self.seen = seen
        lines = [f"root device {spec} not found{': ' + why if why else ''}"]
        lines.append("block devices seen:" if seen else "no block devices seen at all")
        lines += [f"  {dev.describe()}" for dev in seen]
        super().__init__("\n".join(lines))


class RootMountError(MosnetError):
    """No filesystem type could mount the root device."""


# --------------------------------------------------------------------- sysfs


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _parent_disk(sysfs: str, name: str) -> str | None:
    # class/block/sda1 links into .../block/sda/sda1: the parent dir is the disk.
    real = os.path.realpath(os.path.join(sysfs, "class", "block", name))
    parent = os.path.basename(os.path.dirname(real))
    if parent != name and os.path.exists(os.path.join(sysfs, "class", "block", parent)):
        return parent
    stripped = name.rstrip("0123456789")
    if stripped.endswith("p") and stripped[-2:-1] in tuple("0123456789"):
        stripped = stripped[:-1]  # nvme0n1p1, mmcblk0p1
    return stripped if stripped != name else None


def _list_block(sysfs: str, devdir: str) -> list[BlockDev]:
    base = os.path.join(sysfs, "class", "block")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    devs = []
    for name in names:
        d = os.path.join(base, name)
        if _read_text(os.path.join(d, "size")) == "0":
            continue  # unattached loop, empty drive
        partno = _read_text(os.path.join(d, "partition"))
        is_part = partno is not None and re.fullmatch(r"[0-9]{1,4}", partno) is not None
        devs.append(
            BlockDev(
                name=name,
                path=os.path.join(devdir, name),
                devnum=_read_text(os.path.join(d, "dev")) or "?",
                disk=_parent_disk(sysfs, name) if is_part else None,
                partno=int(partno) if is_part and partno else None,
            )
        )
    return devs


def scan(sysfs: str = "/sys", devdir: str = "/dev") -> tuple[BlockDev, ...]:
    """Every block device with its filesystem and partition-table identity."""
    devs = _list_block(sysfs, devdir)
    tables = {d.name: read_partitions(d.path) for d in devs if d.disk is None}
    out = []
    for dev in devs:
        part = None
        if dev.disk is not None:
            part = next((p for p in tables.get(dev.disk, ()) if p.number == dev.partno), None)
        out.append(replace(dev, fs=probe(dev.path), part=part))
    return tuple(out)


def _matches(spec: RootSpec, dev: BlockDev) -> bool:
    fs, part = dev.fs, dev.part
    if spec.kind == "uuid":
        return fs is not None and (fs.uuid or "").lower() == spec.value.lower()
    if spec.kind == "label":
        return fs is not None and fs.label == spec.value
    if spec.kind == "partuuid":
        return part is not None and part.partuuid.lower() == spec.value.lower()
    if spec.kind == "partlabel":
        return part is not None and part.partlabel == spec.value
    if spec.kind == "devnum":
        return dev.devnum == spec.value
    return False


def _by_path(spec: RootSpec) -> RootSpec:
    """/dev/disk/by-uuid/X needs udev; look it up as UUID=X instead."""
    for prefix, kind in _BY_DIR_KIND.items():
        if spec.value.startswith(prefix):
            return RootSpec(kind, spec.value[len(prefix) :])
    return spec


def find_in(spec: RootSpec, devs: Iterable[BlockDev]) -> str | None:
    """Match a spec against scanned devices (PARTNROFF included)."""
    devs = tuple(devs)
    for dev in devs:
        if not _matches(spec, dev):
            continue
        if spec.kind == "partuuid" and spec.partnroff and dev.partno is not None:
            want = dev.partno + spec.partnroff
            sib = [d for d in devs if d.disk == dev.disk and d.partno == want]
            return sib[0].path if sib else None
        return dev.path
    return None


def find(spec: RootSpec, sysfs: str = "/sys", devdir: str = "/dev") -> str | None:
    """The device node for ``spec`` if it is present now, else None."""
    if spec.kind == "path":
        if os.path.exists(_in_devdir(spec.value, devdir)):
            return _in_devdir(spec.value, devdir)
        spec = _by_path(spec)
        if spec.kind == "path":
            return None
    if not spec.supported:
        return None
    if spec.kind == "devnum":  # no need to read any superblock
        return find_in(spec, _list_block(sysfs, devdir))
    return find_in(spec, scan(sysfs, devdir))


def _in_devdir(path: str, devdir: str) -> str:
    if devdir != "/dev" and path.startswith("/dev/"):
        return os.path.join(devdir, path[5:])
    return path


def wait_for(
    spec: RootSpec,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    sysfs: str = "/sys",
    devdir: str = "/dev",
) -> str:
    """Poll for the root device every ~100 ms; RootNotFound after ``timeout`` s."""
    if not spec.supported:
        why = (
            "no root= on the kernel command line"
            if spec.kind == "none"
            else "an NFS root needs nfs:<server>:/<path> or nfsroot=<server>:/<path>"
        )
        raise RootNotFound(spec, scan(sysfs, devdir), why)
    deadline = clock() + timeout
    while True:
        found = find(spec, sysfs, devdir)
        if found is not None:
            return found
        now = clock()
        if now >= deadline:
            raise RootNotFound(spec, scan(sysfs, devdir), f"gave up after {timeout:g} s")
        sleep(min(POLL_INTERVAL, max(deadline - now, 0.0)))


# -------------------------------------------------------------------- mounting

_OPTION_FLAGS = {
    "ro": syscalls.MS_RDONLY,
    "nosuid": syscalls.MS_NOSUID,
    "nodev": syscalls.MS_NODEV,
    "noexec": syscalls.MS_NOEXEC,
    "sync": syscalls.MS_SYNCHRONOUS,
    "noatime": syscalls.MS_NOATIME,
    "nodiratime": syscalls.MS_NODIRATIME,
    "relatime": syscalls.MS_RELATIME,
    "lazytime": syscalls.MS_LAZYTIME,
}


def split_options(options: str | None) -> tuple[int, bool | None, str | None]:
    """Split ``noatime,data=ordered,rw`` into (MS_* flags, ro/rw override, fs data).

    The generic words are mount flags, not filesystem data; ext4 would
    reject ``noatime`` in the data string, so they are taken out as mount(8) does.
    """
    flags, readonly, data = 0, None, []
    for word in (options or "").split(","):
        if word == "ro":
            readonly = True
        elif word == "rw":
            readonly = False
        elif word in _OPTION_FLAGS:
            flags |= _OPTION_FLAGS[word]
        elif word and word != "defaults":
            data.append(word)
    return flags, readonly, ",".join(data) or None


def block_fstypes(proc_filesystems: str = "/proc/filesystems") -> list[str]:
    """Filesystem types the kernel has now that need a device (not ``nodev``)."""
    text = _read_text(proc_filesystems) or ""
    return [ln.split()[0] for ln in text.splitlines() if ln.split() and not ln.startswith("nodev")]


def fstype_order(probed: str | None, available: Iterable[str]) -> list[str]:
    """Probed type first (mount may autoload it), then the preferred, then the rest."""
    avail = list(available)
    order = [probed] if probed and probed != "jbd" else []
    order += [t for t in PREFERRED_FSTYPES if t in avail]
    order += avail
    return list(dict.fromkeys(order))


def mount_root(
    dev: str,
    target: str,
    fstype: str | None = None,
    flags: str | None = None,
    readonly: bool = True,
    *,
    proc_filesystems: str = "/proc/filesystems",
    mount: Callable[[str, str, str, int, str | None], None] = syscalls.sys_mount,
) -> str:
    """Mount ``dev`` on ``target``; returns the type that worked.

    ``fstype`` may be a comma list (rootfstype=); ``flags`` is rootflags=.
    Like the kernel, a read-write mount refused with EACCES/EROFS is retried
    read-only rather than failing boot.
    """
    ms_flags, override, data = split_options(flags)
    ro = readonly if override is None else override
    failures: list[str] = []
    if fstype and fstype != "auto":
        types = [t for t in fstype.split(",") if t]
    else:
        info = probe(dev)
        types = fstype_order(info.fstype if info else None, block_fstypes(proc_filesystems))
        if info is None:  # say so first: a wrong root= is likelier than a missing driver
            failures.append("no filesystem recognised on it (rootfstype= names its type)")
    for t in types:
        err = _try_mount(mount, dev, target, t, ms_flags, ro, data)
        if err is None:
            _log.info("mounted %s on %s as %s (%s)", dev, target, t, "ro" if ro else "rw")
            return t
        failures.append(f"{t}: {err}")
    if not types:
        failures.append("no block filesystem types known to the kernel")
    raise RootMountError(f"cannot mount {dev} on {target}: {'; '.join(failures)}")


def _try_mount(
    mount: Callable[[str, str, str, int, str | None], None],
    dev: str,
    target: str,
    fstype: str,
    flags: int,
    readonly: bool,
    data: str | None,
) -> str | None:
    """None on success, else the strerror text."""
    try:
        mount(dev, target, fstype, flags | (syscalls.MS_RDONLY if readonly else 0), data)
        return None
    except OSError as exc:
        if readonly or exc.errno not in (errno.EACCES, errno.EROFS):
            return exc.strerror or str(exc)
    _log.warning("%s is read-only, mounting it read-only instead", dev)
    try:
        mount(dev, target, fstype, flags | syscalls.MS_RDONLY, data)
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
