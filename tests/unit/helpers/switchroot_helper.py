"""Drive init.switchroot inside throw-away namespaces (run by test_switchroot).

``outer SCENARIO WORK`` runs in a private mount namespace: it builds a fake
initramfs (tmpfs, or a plain disk directory) with canaries, a new-root tmpfs,
a foreign mount and API mounts, then runs ``inner`` as PID 1 of a new pid and
mount namespace. ``inner`` chroots into the fake initramfs and calls
switch_root. Afterwards ``outer`` inspects the (shared) tmpfs contents and
prints one JSON object.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys

import init.pid1  # noqa: F401  (imported before chroot: no imports work after)
import init.switchroot as sr
from mosnet import log as mlog

libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_BIND, MS_REMOUNT = 1, 4096, 32
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10
SCRIPT = (
    "echo SWITCHED pid=$$; "
    "[ -e /proc/1/stat ] && echo proc=ok; [ -d /sys/kernel ] && echo sys=ok; "
    "[ -e /dev/canary ] && echo dev=ok; [ -e /dev/pts/ptmx ] && echo pts=ok; "
    "[ -e /run/canary ] && echo run=ok; [ -e /keep/canary ] && echo keep=ok; "
    "for f in /*; do echo entry=$f; done"
)


def mount(src: str, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    os.makedirs(target, exist_ok=True)
    if (
        libc.mount(
            src.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() or None,
        )
        != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} {target}: {os.strerror(err)}")


def write(path: str, text: str = "canary\n", mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def set_immutable(path: str, on: bool) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4))[0]
        flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def build_new_root(nr: str, scenario: str) -> None:
    write(f"{nr}/keep/canary")
    write(f"{nr}/keep/deep/canary2")
    for d in ("dev", "proc", "sys"):  # no run/: switch_root must create it
        os.makedirs(f"{nr}/{d}", exist_ok=True)
    os.makedirs(f"{nr}/sbin", exist_ok=True)
    os.makedirs(f"{nr}/lib/systemd", exist_ok=True)
    real = f"{nr}/lib/systemd/systemd"
    if scenario not in ("init-missing", "init-none-missing"):
        shutil.copy("/bin/busybox", real)
        os.chmod(real, 0o644 if scenario == "init-not-exec" else 0o755)
    if scenario == "init-escape-dotdot":
        os.symlink("../../../../../bin/busybox", f"{nr}/sbin/init")
    elif scenario == "init-escape-abs":
        os.symlink("/only-in-initramfs/init", f"{nr}/sbin/init")
    elif scenario == "init-dir":
        os.makedirs(f"{nr}/sbin/init")
    else:
        # Absolute: must resolve inside the new root, as after the chroot.
        os.symlink("/lib/systemd/systemd", f"{nr}/sbin/init")


def build_initramfs(ir: str, scenario: str) -> dict[str, object]:
    if scenario != "root-not-tmpfs":
        mount("initrd", ir, "tmpfs")
    if scenario != "no-initrd-release":
        write(f"{ir}/etc/initrd-release", "NAME=fake\n")
    write(f"{ir}/canary-a")
    write(f"{ir}/lib/x/canary-b")
    os.makedirs(f"{ir}/only-in-initramfs")
    shutil.copy("/bin/busybox", f"{ir}/only-in-initramfs/init")
    os.symlink("/newroot/keep", f"{ir}/abs-link-into-newroot")
    os.symlink("newroot/keep/canary", f"{ir}/rel-link-into-newroot")
    os.symlink("/mnt/foreign", f"{ir}/link-to-foreign")
    if scenario == "newroot-not-mountpoint":
        os.makedirs(f"{ir}/newroot")
    elif scenario == "newroot-subdir":
        mount("sub", f"{ir}/subfs", "tmpfs")
        # Another device than /, yet not a mount point: MS_MOVE would fail.
        os.makedirs(f"{ir}/subfs/newroot")
        os.symlink("subfs/newroot", f"{ir}/newroot")
    elif scenario == "newroot-bind-same-fs":
        # A mount point, but on the initramfs device: the wipe could not skip it.
        os.makedirs(f"{ir}/nrsrc")
        mount(f"{ir}/nrsrc", f"{ir}/newroot", None, MS_BIND)
    else:
        mount("newroot", f"{ir}/newroot", "tmpfs")
    build_new_root(f"{ir}/newroot", scenario)
    mount("foreign", f"{ir}/mnt/foreign", "tmpfs")
    write(f"{ir}/mnt/foreign/canary")
    mount("dev", f"{ir}/dev", "tmpfs")
    write(f"{ir}/dev/canary")
    mount("devpts", f"{ir}/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666")
    mount("sysfs", f"{ir}/sys", "sysfs")
    mount("run", f"{ir}/run", "tmpfs")
    write(f"{ir}/run/canary")
    os.makedirs(f"{ir}/proc")
    write(f"{ir}/stuck/immutable")
    return {"immutable": set_immutable(f"{ir}/stuck/immutable", True)}


def survivors(ir: str) -> dict[str, bool]:
    names = [
        "canary-a",
        "lib/x/canary-b",
        "etc/initrd-release",
        "abs-link-into-newroot",
        "newroot/keep/canary",
        "newroot/keep/deep/canary2",
        "newroot/sbin/init",
        "mnt/foreign/canary",
        "stuck/immutable",
        "only-in-initramfs/init",
    ]
    return {n: os.path.lexists(os.path.join(ir, n)) for n in names}


def outer(scenario: str, work: str) -> None:
    ir = f"{work}/initrd"
    info = build_initramfs(ir, scenario)
    cmd = ["unshare", "--mount", "--pid", "--fork"]
    if scenario == "not-pid1":
        cmd = ["unshare", "--mount"]
    proc = subprocess.run(
        [*cmd, sys.executable, __file__, "inner", scenario, ir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if info["immutable"]:
        set_immutable(f"{ir}/stuck/immutable", False)
    print(
        json.dumps(
            {
                "rc": proc.returncode,
                "stdout": proc.stdout,
                "stderr": proc.stderr,
                "alive": survivors(ir),
                **info,
            }
        )
    )


def inner(scenario: str, ir: str) -> None:
    mlog.setup()
    if os.getpid() == 1:
        mount("proc", f"{ir}/proc", "proc")
    os.chroot(ir)
    os.chdir("/")
    init: str | None = "/sbin/init"
    if scenario == "init-none-missing":
        init = None
    try:
        sr.switch_root("/newroot", init, ["sh", "-c", SCRIPT], {"PATH": "/sbin"})
    except sr.SwitchRootRefused as e:
        print(f"REFUSED: {e}", flush=True)
    except sr.SwitchRootFailed as e:
        print(f"FAILED: {e}", flush=True)


if __name__ == "__main__":
    {"outer": outer, "inner": inner}[sys.argv[1]](sys.argv[2], sys.argv[3])
