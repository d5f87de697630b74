"""PID 1 of a fresh pid+mount namespace playing a distro init (tests/netns/test_chain_follow.py).

Usage: chain_helper.py TOP WORKDIR MODE. It builds a fake initramfs (tmpfs)
with mosnet's /run/mosnet, forks the daemon's chain follower exactly as
mosnet.daemon.mainloop runs it (the watcher follows the same way), then does what
initramfs-tools' /init does: a fresh tmpfs on /run, the root mounted,
``mount --move`` of /run and /proc into it, ``mount --move . /`` and chroot
(run-init). MODE ``late`` says "C" only after
the switch (the follower must catch up); ``live`` says it first. Prints one
JSON line with what the real root sees.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])

from mosnet.daemon import mainloop  # noqa: E402  (after the path is set)
from mosnet.daemon.rootfollow import Follower  # noqa: E402

MS_MOVE, MS_REC, MS_PRIVATE = 8192, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def mount(src: str | None, target: str, fstype: str | None, flags: int = 0) -> None:
    if _libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), flags, None):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def ident(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


def make_initramfs(work: str) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = os.path.join(work, "initramfs")
    os.makedirs(root)
    mount("tmpfs", root, "tmpfs")
    for d in ("proc", "run", "root"):
        os.mkdir(os.path.join(root, d))
    mount("proc", os.path.join(root, "proc"), "proc")
    mount("tmpfs", os.path.join(root, "run"), "tmpfs")  # mosnet's /run
    os.mkdir(os.path.join(root, "run/mosnet"))
    with open(os.path.join(root, "run/mosnet/state.json"), "w") as f:
        json.dump({"schema": 1, "boot": {"result": "chain"}}, f)
    os.chdir(root)
    os.chroot(".")


def distro_init(delay: float) -> None:
    """initramfs-tools: mounts over ours, the root, the moves, run-init."""
    mount("proc", "/proc", "proc")
    mount("tmpfs", "/run", "tmpfs")  # hides /run/mosnet
    os.mkdir("/run/initramfs")
    mount("tmpfs", "/root", "tmpfs")  # the real root
    for d in ("run", "proc", "etc"):
        os.mkdir(os.path.join("/root", d))
    time.sleep(delay)  # udev, fsck, the root mount...
    mount("/run", "/root/run", None, MS_MOVE)
    mount("/proc", "/root/proc", None, MS_MOVE)
    os.chdir("/root")
    mount(".", "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def main() -> None:
    assert os.getpid() == 1, "run under unshare --pid --fork"
    mode = sys.argv[3]
    make_initramfs(sys.argv[2])
    read_fd, write_fd = os.pipe()
    run_fd = os.open("/run/mosnet", os.O_PATH | os.O_DIRECTORY)
    entered = threading.Event()
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        stop_r, _stop_w = os.pipe()  # never written: the follower runs until it followed
        follower = Follower(read_fd, run_fd, chain=True)
        mainloop.follow(follower, "/run/mosnet", True, stop_r, entered.set)
        os._exit(0 if entered.is_set() else 3)
    os.close(read_fd)
    if mode == "live":
        os.write(write_fd, mainloop.CHAINED)
    distro_init(0.5 if mode == "live" else 0.0)
    if mode == "late":
        os.write(write_fd, mainloop.CHAINED)
    _, status = os.waitpid(pid, 0)
    with open("/run/mosnet/state.json") as f:
        st = json.load(f)
    print(json.dumps({
        "follower_exit": os.waitstatus_to_exitcode(status),
        "state": st,
        "run_mosnet_is_ours": os.path.exists("/run/mosnet/state.json"),
        "initramfs_dir_in_run": os.path.isdir("/run/initramfs"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
