"""``mosroot=``: fetch a root image over HTTP into RAM, verify it, mount it.

Runs in the root phase, after the network is up. The image streams into a
tmpfs sized for it (after MemAvailable was checked against Content-Length)
while sha256 is computed; nothing is mounted from it before the digest
matches ``mosroot_sha256=``. Then a squashfs goes on a read-only loop device
under an overlayfs with a tmpfs upper layer (a writable root), and a
``.tar.zst`` is unpacked into a tmpfs. Every step registers its undo, so any
failure leaves no mount, no loop device and no partial file behind.
The mounts live under /run/mosnet/netroot, which switch_root carries into
the real root along with /run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from init import httpget, httpparse, loopdev, syscalls
from init.netrootcfg import ADDON_HINT, NetRoot
from mosnet.base import children, log
from mosnet.base.errors import MosnetError

_log = log.get("init.netroot")

STAGE = "/run/mosnet/netroot"
MiB = 1 << 20
HEADROOM = 64 * MiB  # left for the system after the image is in RAM
TAR_FACTOR = 3  # archive + a conservative guess of what it unpacks to
FETCH_ATTEMPTS = 4
BACKOFF = (1.0, 2.0, 4.0)
ZSTD = "/usr/bin/zstd"
TAR = "/bin/busybox tar"
SH = ("/bin/busybox", "sh")  # ash: pipefail
UNPACK_TIMEOUT = 600.0
MODULES = {"squashfs": ("loop", "squashfs", "overlay"), "tar.zst": ()}
PROGRAMS = {"squashfs": (), "tar.zst": (ZSTD,)}

MountFn = Callable[[str | None, str, str | None, int, str | None], None]


class NetRootError(MosnetError):
    """The net root could not be fetched, verified or mounted; nothing is left mounted."""


@dataclass(frozen=True)
class RootSource:
    """What state.json records about the fetched root."""

    url: str
    sha256: str
    format: str
    size: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "sha256": self.sha256, "format": self.format,
            "size": self.size, "fetch_ms": round(self.seconds * 1000, 1),
        }  # fmt: skip


def _umount(target: str) -> None:
    try:
        syscalls.sys_umount2(target, 0)
    except OSError:
        syscalls.sys_umount2(target, syscalls.MNT_DETACH)


def _load_modules(names: Sequence[str]) -> None:
    if not names:
        return
    from init import modindex, modules  # the index is read only when a net root needs it

    loader = modules.Loader(modindex.ModuleIndex.for_image(os.uname().release))
    for name in names:
        loader.load(name)


def _extract(archive: str, target: str) -> None:
    """zstd -dc archive | tar -x -C target (``children.run``: safe under PID 1's reaping)."""
    script = f'set -o pipefail; {ZSTD} -dcq -- "$1" | {TAR} -x -C "$2"'
    done = children.run([*SH, "-c", script, "sh", archive, target], timeout=UNPACK_TIMEOUT)
    if done.failure == "timeout":
        _log.warning("%s: timed out after %g s, killed", SH[0], UNPACK_TIMEOUT)
        raise NetRootError(f"unpacking took longer than {UNPACK_TIMEOUT:.0f} s")
    if done.failure is not None:
        raise NetRootError(done.error)  # could not start: the OSError's text, as before
    if done.returncode:
        why = done.stderr.strip()[-300:]
        raise NetRootError(f"unpacking failed (exit {done.returncode}): {why}")


@dataclass
class Seams:
    """Everything with a side effect, replaceable in unit tests."""

    connect: httpget.Connect = httpget._connect
    mount: MountFn = syscalls.sys_mount
    umount: Callable[[str], None] = _umount
    attach: Callable[[str], loopdev.LoopDevice] = loopdev.attach
    extract: Callable[[str, str], None] = _extract
    load_modules: Callable[[Sequence[str]], None] = _load_modules
    executable: Callable[[str], bool] = lambda path: os.access(path, os.X_OK)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    meminfo: str = "/proc/meminfo"
    undo: list[str] = field(default_factory=list)  # what cleanup did, for tests


def mem_available(path: str = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes, None if the kernel does not say."""
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key == "MemAvailable" and rest.split()[0].isdigit():
                    return int(rest.split()[0]) * 1024
    except (OSError, IndexError):
        return None
    return None


def ram_budget(length: int | None, fmt: str, available: int | None) -> int:
    """The most bytes the download may take; NetRootError if it cannot fit."""
    factor = TAR_FACTOR if fmt == "tar.zst" else 1
    if available is None:
        raise NetRootError("cannot read MemAvailable from /proc/meminfo")
    budget = (available - HEADROOM) // factor
    if length is not None and length > budget:
        need = (length * factor + HEADROOM) // MiB
        raise NetRootError(
            f"not enough RAM: the image is {length // MiB} MiB, a {fmt} root needs "
            f"{need} MiB available, the kernel has {available // MiB} MiB"
        )
    if budget <= 0:
        raise NetRootError(f"not enough RAM: only {available // MiB} MiB available")
    return length if length is not None else budget


class _Fetch:
    """One attempt: download, verify, mount. ``undo`` is its cleanup stack."""

    def __init__(self, spec: NetRoot, new_root: str, stage: str, seams: Seams) -> None:
        self.spec, self.new_root, self.stage, self.seams = spec, new_root, stage, seams
        self.image_undo = contextlib.ExitStack()  # the downloaded file's tmpfs
        self.root_undo = contextlib.ExitStack()  # what makes up the root

    def _mount(
        self, undo: contextlib.ExitStack, src: str | None, target: str, fstype: str,
        flags: int, data: str,
    ) -> None:  # fmt: skip
        os.makedirs(target, 0o755, exist_ok=True)
        self.seams.mount(src, target, fstype, flags, data or None)
        undo.callback(self._unmount, target)

    def _unmount(self, target: str) -> None:
        self.seams.undo.append(f"umount {target}")
        try:
            self.seams.umount(target)
            if target != self.new_root:
                os.rmdir(target)
        except OSError as exc:
            _log.error("mosroot: cleanup: cannot unmount %s: %s", target, exc)

    def download(self, deadline: float) -> tuple[str, int]:
        """Stream into a tmpfs of the right size; the file's path and size."""
        spec, seams = self.spec, self.seams
        resp = httpget.open_url(
            spec.url,
            connect=seams.connect,
            stall=spec.stall_timeout,
            deadline=deadline,
            clock=seams.clock,
        )
        try:
            return self._stream(resp, deadline)
        finally:
            resp.close()

    def _stream(self, resp: httpget.Response, deadline: float) -> tuple[str, int]:
        spec, seams = self.spec, self.seams
        limit = ram_budget(resp.length, spec.format, mem_available(seams.meminfo))
        if resp.url != spec.url:
            _log.info("mosroot: redirected to %s", resp.url)
        _log.info("mosroot: %s bytes to fetch", resp.length if resp.length is not None else "?")
        dl = os.path.join(self.stage, "image")
        self._mount(self.image_undo, "tmpfs", dl, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV,
                    f"size={limit + MiB},mode=0700")  # fmt: skip
        path = os.path.join(dl, "root." + spec.format)
        digest, size = hashlib.sha256(), 0
        with open(path, "wb") as f:
            for data in httpget.body(resp, deadline, seams.clock):
                size += len(data)
                if size > limit:
                    raise NetRootError(f"the image grew past {limit} bytes, the RAM budget")
                digest.update(data)
                f.write(data)
        if digest.hexdigest() != spec.sha256:
            raise NetRootError(
                f"sha256 mismatch: the {size}-byte image has {digest.hexdigest()}, "
                f"mosroot_sha256= says {spec.sha256}"
            )
        _log.info("mosroot: %d bytes, sha256 verified", size)
        return path, size

    def mount_squashfs(self, image: str, readonly: bool) -> None:
        lower, rw = os.path.join(self.stage, "lower"), os.path.join(self.stage, "rw")
        loop = self.seams.attach(image)
        try:
            self._mount(self.root_undo, loop.path, lower, "squashfs", syscalls.MS_RDONLY, "")
        finally:
            loop.close()  # the mount holds the device now; autoclear frees it later
        # no nosuid here: the upper layer holds the real root's copied-up files
        self._mount(self.root_undo, "tmpfs", rw, "tmpfs", 0, "mode=0755")
        for sub in ("upper", "work"):
            os.makedirs(os.path.join(rw, sub), 0o755, exist_ok=True)
        opts = f"lowerdir={lower},upperdir={rw}/upper,workdir={rw}/work"
        flags = syscalls.MS_RDONLY if readonly else 0
        self._mount(self.root_undo, "overlay", self.new_root, "overlay", flags, opts)

    def mount_tar(self, archive: str, readonly: bool) -> None:
        self._mount(self.root_undo, "tmpfs", self.new_root, "tmpfs", 0, "mode=0755")
        self.seams.extract(archive, self.new_root)
        if readonly:
            flags = syscalls.MS_REMOUNT | syscalls.MS_RDONLY
            self.seams.mount(None, self.new_root, None, flags, None)


def _require_programs(spec: NetRoot, seams: Seams) -> None:
    """Refuse before any download when the image lacks a program (zstd: the add-on)."""
    for program in PROGRAMS[spec.format]:
        if not seams.executable(program):
            why = f"a .{spec.format} root needs {program}, which this image lacks"
            raise NetRootError(f"{why}; {ADDON_HINT}")


def fetch_and_mount(
    spec: NetRoot, new_root: str, readonly: bool, *, stage: str = STAGE, seams: Seams | None = None
) -> RootSource:
    """Fetch, verify and mount the root on ``new_root``; NetRootError otherwise.

    Every failure, of an attempt or of the whole, is one line
    ``mosroot=<url>: <cause>``, the URL as the command line gave it.
    """
    seams = seams or Seams()
    start = seams.clock()
    _log.info(
        "mosroot: fetching %s (%s, %.0f s at most)", spec.url, spec.format, spec.fetch_timeout
    )
    try:
        _require_programs(spec, seams)
        seams.load_modules(MODULES[spec.format])
        size = _attempts(spec, new_root, readonly, stage, seams, start + spec.fetch_timeout)
    except (MosnetError, OSError) as exc:
        failed = NetRootError(f"mosroot={spec.url.as_given}: {exc}")
        _log.error("%s", failed)
        raise failed from None
    return RootSource(str(spec.url), spec.sha256, spec.format, size, seams.clock() - start)


def _attempts(
    spec: NetRoot, new_root: str, readonly: bool, stage: str, seams: Seams, deadline: float
) -> int:
    """Up to FETCH_ATTEMPTS tries while the error is transient and time is left."""
    for attempt in range(1, FETCH_ATTEMPTS):
        try:
            return _attempt(spec, new_root, readonly, stage, seams, deadline)
        except httpparse.HttpError as exc:
            delay = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
            if not exc.transient or seams.clock() + delay > deadline:
                raise
            _log.warning(
                "mosroot=%s: %s (attempt %d of %d; again in %.0f s)",
                spec.url.as_given, exc, attempt, FETCH_ATTEMPTS, delay,
            )  # fmt: skip
            seams.sleep(delay)
    return _attempt(spec, new_root, readonly, stage, seams, deadline)


def _attempt(
    spec: NetRoot, new_root: str, readonly: bool, stage: str, seams: Seams, deadline: float
) -> int:
    job = _Fetch(spec, new_root, stage, seams)
    with job.image_undo:
        with job.root_undo:
            image, size = job.download(deadline)
            if spec.format == "squashfs":
                job.mount_squashfs(image, readonly)
            else:
                job.mount_tar(image, readonly)
            job.root_undo.pop_all()  # success: the root stays mounted
        if spec.format == "squashfs":
            job.image_undo.pop_all()  # the loop device reads the image from there
    # a .tar.zst was unpacked: leaving the with removed its tmpfs
    return size
