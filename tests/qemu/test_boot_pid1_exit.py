"""A real boot whose PID 1 program is broken keeps PID 1 alive (QEMU, panic=-1).

The image is the real one with a small cpio appended that the kernel
unpacks over it: once the main binary is a plain file (the pre-init's exec
fails), once one of the binary's extension modules is garbage (the boot's
import fails inside the Nuitka program). Either way the console gets the
cause and a shell, which is started again after ``exit``; a PID 1 that
exited would panic the kernel and end QEMU (-no-reboot).
"""

from __future__ import annotations

import io
import stat
import time
from pathlib import Path

from initramfs.cpio import CpioEntry, write_newc
from initramfs.listing import list_image
from qemu.vm import Vm
from tests.qemu.conftest import BOOT_TIMEOUT
from tests.qemu.conftest import boot_spec as _spec

MAIN = "usr/lib/mosnet/mosnet-init.bin"
PROMPT = r"# $|# \S*$|/ #"


def overlaid(images: dict[str, Path], tmp_path: Path, name: str, data: bytes) -> dict[str, Path]:
    """The images with ``name`` replaced by ``data`` (mode 0644) in the initramfs."""
    buf = io.BytesIO()
    write_newc(buf, [CpioEntry(name, stat.S_IFREG | 0o644, data)], 0)
    base = images["initrd"].read_bytes()
    # The kernel reads an uncompressed archive only at a 4-byte aligned offset.
    initrd = tmp_path / "broken.img"
    initrd.write_bytes(base + b"\0" * (-len(base) % 4) + buf.getvalue())
    return {**images, "initrd": initrd}


def wait_count(vm: Vm, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while vm.text().count(text) < count:
        if vm.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not {count} times; tail:\n{vm.text()[-3000:]}")
        time.sleep(0.2)


def exit_shell_twice(vm: Vm, started: str, tag: str) -> str:
    """Use the shell, exit it, see it come back, exit again; the console text."""
    for round_ in (1, 2):
        wait_count(vm, started, round_, 120)
        vm.wait_for(PROMPT, 60)
        vm.send(f"echo {tag}-$((6*{round_})); exit\n")
        wait_count(vm, f"{tag}-{6 * round_}", 1, 60)
    wait_count(vm, started, 3, 120)
    return vm.text()


def test_preinit_exec_failure_keeps_a_respawned_rescue_shell(
    images: dict[str, Path], tmp_path: Path
) -> None:
    broken = overlaid(images, tmp_path, MAIN, b"not a program\n")
    spec = _spec(broken, "root=/dev/vda", net="none")
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(rf"mosnet-preinit: cannot exec /{MAIN}: Permission denied", BOOT_TIMEOUT)
        console = exit_shell_twice(vm, "mosnet-preinit: starting the rescue shell", "PRE")
    assert "mosnet-preinit: rescue shell exited with status 0; respawning in 1000 ms" in console
    assert "Kernel panic" not in console


def test_import_failure_in_the_binary_keeps_a_respawned_shell(
    images: dict[str, Path], tmp_path: Path
) -> None:
    # init.pid1 imports termios, an extension module in the dist next to the binary.
    # (Not ctypes: Nuitka imports it "the hard way" and aborts in C if it fails,
    # which no Python guard can catch.)
    names = [str(p).lstrip("/") for p in list_image(images["initrd"])]
    termios_so = next(n for n in names if n.startswith("usr/lib/mosnet/termios."))
    broken = overlaid(images, tmp_path, termios_so, b"garbage, not ELF\n")
    spec = _spec(broken, "root=/dev/vda", net="none")
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"mosnet-init: boot failed to start: ImportError", BOOT_TIMEOUT)
        console = exit_shell_twice(vm, "mosnet-init: rescue shell /bin/sh on the console", "IMP")
    assert "mosnet-init: rescue shell exited (wait status 0x0); respawning" in console
    assert "Kernel panic" not in console
