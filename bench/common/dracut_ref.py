"""dracut's network initramfs for the same kernel, built here without installing dracut.

Debian 12's ``dracut``, ``dracut-core`` and ``dracut-network`` (059), plus
``udev`` (the host has systemd but not udevd), ``isc-dhcp-client`` (the
network-legacy module runs dhclient) and ``iputils-arping``, are fetched with
``apt-get download`` and extracted with ``dpkg-deb -x``. dracut runs in a
chroot whose root is an overlay: the host's ``/`` below, the extracted
packages above (on a tmpfs), the kernel's module tree bound at
``/usr/lib/modules/<kver>``. All of it lives in a private mount namespace
(``unshare -m``), so the host's file systems never change.

Two images, both compressed like mosnet's (zstd at the build's level, one thread):

``generic``
    ``--no-hostonly``, modules ``bash base udev-rules kernel-modules
    kernel-network-modules rootfs-block fs-lib network-legacy``: what dracut
    puts in a network initramfs for any machine.
``drivers``
    the same, but ``--drivers`` limited to mosnet's driver list
    (``initramfs.kmod.DEFAULT_MODULES``); dracut's ``network`` module still
    adds every NIC driver (``kernel-network-modules`` cannot be omitted).
    The QEMU boot bench boots this one.

Built images are cached under ``.cache/bench/dracut`` by a hash of the
inputs (packages, options, the kernel's modules.dep).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from initramfs.build import ZSTD_LEVEL  # noqa: E402
from initramfs.kmod import DEFAULT_MODULES  # noqa: E402

TOP = Path(__file__).resolve().parents[2]
KERNEL_ROOT = TOP / ".cache" / "kernel" / "current" / "root"
CACHE = TOP / ".cache" / "bench" / "dracut"
PACKAGES = (
    "dracut", "dracut-core", "dracut-network", "udev", "libudev1",
    "isc-dhcp-client", "iputils-arping",
)  # fmt: skip
DRACUT_MODULES = "bash base udev-rules kernel-modules kernel-network-modules rootfs-block fs-lib"
NETWORK = "network-legacy network"
COMPRESS = f"zstd --ultra -{ZSTD_LEVEL} -q -T1"  # the level of initramfs/build.py
KINDS = ("generic", "drivers")
BUILD_TIMEOUT = 900
# What the guest needs on the kernel command line (besides root=).
CMDLINE = "rd.neednet=1 ip=dhcp"

# Runs as root inside ``unshare -m --propagation private``; $1 work dir,
# $2 kernel module dir, $3 kver, the rest: the dracut command.
_CHROOT_SH = r"""set -eu
W=$1; KMOD=$2; KVER=$3; shift 3
M=$W/merged
mkdir -p "$W/ovl" "$M"
mount -t tmpfs bq7-dracut "$W/ovl"
mkdir -p "$W/ovl/upper" "$W/ovl/work"
cp -a "$W/pkgroot/." "$W/ovl/upper/"
mount -t overlay bq7-dracut -o "lowerdir=/,upperdir=$W/ovl/upper,workdir=$W/ovl/work" "$M"
for m in proc sys dev run; do mount --rbind "/$m" "$M/$m"; done
mount -t tmpfs bq7-tmp "$M/tmp"
mount -t tmpfs bq7-vartmp "$M/var/tmp"
mkdir -p "$M/bq7out" "$M/usr/lib/modules/$KVER"
mount --bind "$W/out" "$M/bq7out"
mount --bind "$KMOD" "$M/usr/lib/modules/$KVER"
exec chroot "$M" "$@"
"""


class DracutUnavailable(Exception):
    """dracut's image cannot be built here; the message says why."""


def kernel_version(root: Path = KERNEL_ROOT) -> str:
    """The one kernel version under ``<root>/lib/modules``."""
    mods = root / "lib" / "modules"
    kvers = sorted(p.name for p in mods.iterdir() if p.is_dir()) if mods.is_dir() else []
    if len(kvers) != 1:
        raise RuntimeError(f"{mods}: expected one kernel version, found {kvers}")
    return kvers[0]


def dracut_argv(kind: str, kver: str, out: str) -> list[str]:
    """The dracut command line of an image ``kind`` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown dracut image kind {kind!r}; known: {', '.join(KINDS)}")
    argv = [
        "/usr/bin/dracut", "--force", "--no-hostonly", "--no-hostonly-cmdline",
        "--no-early-microcode", "--reproducible", "--kver", kver,
        "--modules", f"{DRACUT_MODULES} {NETWORK}", "--compress", COMPRESS,
    ]  # fmt: skip
    if kind == "drivers":
        argv += ["--drivers", " ".join(DEFAULT_MODULES)]
    return [*argv, out]


def _fetch(debs: Path, log: Callable[[str], None]) -> list[Path]:
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob("*.deb"))
    names = {p.name.split("_", 1)[0] for p in have}
    if set(PACKAGES) <= names:
        return have
    log(f"  dracut: apt-get download {' '.join(PACKAGES)}")
    r = subprocess.run(
        ["apt-get", "download", *PACKAGES], cwd=debs, capture_output=True, text=True,
        timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if r.returncode != 0:
        raise DracutUnavailable(f"apt-get download failed: {r.stderr.strip()[-300:]}")
    return sorted(debs.glob("*.deb"))


def _extract(debs: Sequence[Path], dest: Path) -> None:
    """dpkg-deb -x each package; fold /bin, /sbin, /lib into /usr (merged-/usr host)."""
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, capture_output=True)
    for d in ("bin", "sbin", "lib"):
        src = dest / d
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, dest / "usr" / d, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(src)


def _key(kind: str, debs: Sequence[Path], kver: str) -> str:
    h = hashlib.sha256()
    for part in (kind, kver, *dracut_argv(kind, kver, "-"), *(p.name for p in debs)):
        h.update(part.encode() + b"\0")
    dep = KERNEL_ROOT / "lib" / "modules" / kver / "modules.dep"
    h.update(dep.read_bytes() if dep.is_file() else b"")
    return h.hexdigest()[:16]


def build(kind: str, log: Callable[[str], None] = print, fresh: bool = False) -> Path:
    """The cached image of ``kind``, built first if needed (always with ``fresh``).

    DracutUnavailable if it cannot be built here.
    """
    if os.geteuid() != 0:
        raise DracutUnavailable("building dracut's image needs root (mount namespace, chroot)")
    for tool in ("apt-get", "dpkg-deb", "unshare", "chroot", "zstd", "cpio"):
        if shutil.which(tool) is None:
            raise DracutUnavailable(f"needs {tool}")
    try:
        kver = kernel_version()
    except RuntimeError as exc:
        raise DracutUnavailable(str(exc)) from exc
    debs = _fetch(CACHE / "debs", log)
    out = CACHE / f"dracut-{kind}-{_key(kind, debs, kver)}.img"
    if out.is_file() and not fresh:
        return out
    work = Path(tempfile.mkdtemp(prefix="bq7-dracut-"))
    try:
        _extract(debs, work / "pkgroot")
        (work / "out").mkdir()
        script = work / "chroot.sh"
        script.write_text(_CHROOT_SH)
        kmod = KERNEL_ROOT / "lib" / "modules" / kver
        argv = dracut_argv(kind, kver, f"/bq7out/{out.name}")
        log(f"  dracut: building the {kind} image (about a minute)")
        try:
            r = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", str(script), str(work),
                 str(kmod), kver, *argv],
                capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise DracutUnavailable(f"dracut took over {BUILD_TIMEOUT} s") from exc
        built = work / "out" / out.name
        if r.returncode != 0 or not built.is_file():
            tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-4:])
            raise DracutUnavailable(f"dracut failed ({r.returncode}): {tail}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        shutil.copyfile(built, tmp)
        os.replace(tmp, out)
        (out.with_suffix(".log")).write_text(r.stdout + r.stderr)
        return out
    finally:
        # the namespace is gone with unshare's exit: its mounts with it
        with contextlib.suppress(OSError):
            shutil.rmtree(work)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", nargs="*", default=list(KINDS), choices=KINDS)
    args = p.parse_args(argv)
    for kind in args.kind:
        try:
            path = build(kind)
        except DracutUnavailable as exc:
            print(f"{kind}: unavailable: {exc}")
            return 1
        print(f"{kind}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
