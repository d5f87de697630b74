"""Thin ctypes wrappers for the few syscalls PID 1 needs and os lacks.

Every wrapper checks errno and raises ``OSError(errno, strerror, path)`` the
way the ``os`` module does, so callers handle one exception type. libc is
opened lazily and by soname: ``ctypes.util.find_library`` would fork
``ldconfig``, which an initramfs does not have.
"""

from __future__ import annotations

import ctypes
import os

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2

LINUX_REBOOT_CMD_RESTART = 0x01234567
LINUX_REBOOT_CMD_HALT = 0xCDEF0123
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC

# finit_module(2) flags.
MODULE_INIT_IGNORE_MODVERSIONS = 1
MODULE_INIT_IGNORE_VERMAGIC = 2

# glibc < 2.39 has no finit_module wrapper, so it goes through syscall(2).
_FINIT_MODULE_NR = {
    "x86_64": 313,
    "aarch64": 273,
    "riscv64": 273,
    "i686": 350,
    "i386": 350,
    "armv7l": 379,
    "ppc64le": 353,
    "s390x": 344,
}

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library, opened once with errno capture on."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            # musl or a static build: the symbols are in the process image.
            _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _enc(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return ret


def sys_mount(
    source: str | None,
    target: str,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2). Raises OSError with strerror and the target on failure."""
    fn = libc().mount
    fn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    fn.restype = ctypes.c_int
    _check(fn(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)), target)


def sys_umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    fn = libc().umount2
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    fn.restype = ctypes.c_int
    _check(fn(_enc(target), flags), target)


def finit_module_nr(machine: str | None = None) -> int | None:
    """The finit_module syscall number for this (or the given) machine."""
    return _FINIT_MODULE_NR.get(machine or os.uname().machine)


def finit_module(fd: int, params: str = "", flags: int = 0) -> None:
    """finit_module(2) on an open .ko fd. EEXIST is left to the caller."""
    nr = finit_module_nr()
    if nr is None:
        raise OSError(38, os.strerror(38), "finit_module")  # ENOSYS
    fn = libc().syscall
    fn.restype = ctypes.c_long
    ret = fn(
        ctypes.c_long(nr),
        ctypes.c_int(fd),
        ctypes.c_char_p(params.encode()),
        ctypes.c_int(flags),
    )
    _check(int(ret), "finit_module")


def reboot(cmd: int) -> None:
    """reboot(2) with one of the LINUX_REBOOT_CMD_* values; returns only on error."""
    fn = libc().reboot
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    # The magic values exceed INT_MAX; the kernel reads them as unsigned.
    _check(fn(ctypes.c_int(cmd).value), "reboot")
