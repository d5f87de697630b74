"""Drive init.switchroot inside throw-away namespaces (run by test_switchroot).

``outer SCENARIO WORK`` runs in a private mount namespace: it builds a fake
initramfs (tmpfs, or a plain disk directory) with canaries, a new-root tmpfs,
a foreign mount and API mounts, then runs ``inner`` as PID 1 of a new pid and
mount namespace. ``inner`` chroots into the fake initramfs and calls
switch_root. Afterwards ``outer`` inspects the (shared) tmpfs contents and
prints one JSON object.

The ``exec-fails-*`` scenarios lose a race on purpose: the chosen init passes
every check and is deleted right before the exec, after the wipe. What runs
then is the next init (``exec-fails-next``), the new root's /bin/sh respawned
by PID 1 (``exec-fails-rescue``, whose shell reads its commands from a file
standing in for the console) or nothing (``exec-fails-nothing``).
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
import time
from typing import NoReturn

import init.switchroot as sr
from init import pid1, rescue  # imported before chroot: no imports work after
from mosnet.base import log as mlog

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
# The next candidate: a script, so it runs the same checks as argv[2] of sh.
NEXT_INIT = '#!/bin/sh\necho "NEXT-INIT=$0"\neval "$2"\n'
RESCUE_INPUT = "echo RESCUE pid=$$ ppid=$PPID >> /keep/rescue.log\n"
RESCUE_LOG = "newroot/keep/rescue.log"
WITH_SHELL = ("init-bad-interp", "exec-fails-next", "exec-fails-rescue")
WITH_NEXT = ("init-bad-interp", "exec-fails-next")


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
    elif scenario == "init-bad-interp":
        write(f"{nr}/sbin/init", "#!/nonexistent/sh\nexit 0\n", 0o755)
    else:
        # Absolute: must resolve inside the new root, as after the chroot.
        os.symlink("/lib/systemd/systemd", f"{nr}/sbin/init")
    if scenario in WITH_SHELL:
        os.makedirs(f"{nr}/bin", exist_ok=True)
        shutil.copy("/bin/busybox", f"{nr}/bin/busybox")
        os.symlink("busybox", f"{nr}/bin/sh")
    if scenario in WITH_NEXT:
        write(f"{nr}/etc/init", NEXT_INIT, 0o755)
    if scenario == "exec-fails-rescue":
        write(f"{nr}/rescue-console", RESCUE_INPUT)


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


def _run_inner(cmd: list[str], scenario: str, ir: str) -> subprocess.CompletedProcess[str]:
    argv = [*cmd, sys.executable, __file__, "inner", scenario, ir]
    if scenario != "exec-fails-rescue":
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)
    # PID 1 respawns the rescue shell for ever: wait for two runs, then end it.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        deadline = time.monotonic() + 60
        log = os.path.join(ir, RESCUE_LOG)
        while time.monotonic() < deadline and p.poll() is None:
            if os.path.exists(log) and len(open(log).read().splitlines()) >= 2:
                break
            time.sleep(0.1)
        p.kill()  # --kill-child takes PID 1 of the namespace with it
        out, err = p.communicate(timeout=30)
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def outer(scenario: str, work: str) -> None:
    ir = f"{work}/initrd"
    info = build_initramfs(ir, scenario)
    cmd = ["unshare", "--mount", "--pid", "--fork", "--kill-child"]
    if scenario == "not-pid1":
        cmd = ["unshare", "--mount"]
    proc = _run_inner(cmd, scenario, ir)
    if info["immutable"]:
        set_immutable(f"{ir}/stuck/immutable", False)
    log = os.path.join(ir, RESCUE_LOG)
    print(
        json.dumps(
            {
                "rc": proc.returncode,
                "stdout": proc.stdout,
                "stderr": proc.stderr,
                "alive": survivors(ir),
                "rescue_log": open(log).read() if os.path.exists(log) else None,
                **info,
            }
        )
    )


def _lose_the_race() -> None:
    """Runs in the new root after the wipe: the checked init disappears."""
    os.unlink("/lib/systemd/systemd")


def _rescue_console(shell: str) -> NoReturn:
    pid1.emergency_shell(shell, "/rescue-console", tick=0.05, respawn_delay=0.2)


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
        sr.switch_root(
            "/newroot", init, ["sh", "-c", SCRIPT], {"PATH": "/sbin"},
            before_exec=_lose_the_race if scenario.startswith("exec-fails") else None,
            before_next_init=lambda path: print(f"NEXT: {path}", flush=True),
        )  # fmt: skip
    except sr.SwitchRootRefused as e:
        print(f"REFUSED: {e}", flush=True)
    except sr.SwitchRootFailed as e:
        print(f"FAILED: {e}", flush=True)
        rescue.after_wipe(run_shell=_rescue_console)
        print("NO-RESCUE", flush=True)


if __name__ == "__main__":
    {"outer": outer, "inner": inner}[sys.argv[1]](sys.argv[2], sys.argv[3])
