"""Boot a kernel + initramfs (+ root disk) under QEMU TCG and read its serial console.

Used by tests/qemu, the demo and the benchmarks. KVM is never used here: it
hangs on these machines, so ``-accel tcg`` is explicit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
OUT = TOP / "out"
GUEST_MAC = "52:54:00:12:34:56"


@dataclass(frozen=True)
class VmSpec:
    kernel: Path = OUT / "vmlinuz"
    initrd: Path = OUT / "mosnet-initramfs.img"
    append: str = ""
    disk: Path | None = None  # attached as virtio-blk -> /dev/vda
    net: str = "user"  # "user", "none" or "tap:<ifname>"
    macs: tuple[str, ...] = (GUEST_MAC,)
    memory_mb: int = 768
    netns: str | None = None  # run QEMU inside this network namespace (for taps)
    extra: tuple[str, ...] = field(default_factory=tuple)
    # "" boots kernel+initrd directly; "n" through the NIC's iPXE ROM, "c" from
    # the disk's boot loader (kernel, initrd and append are then unused)
    firmware: str = ""


def _net_args(spec: VmSpec) -> list[str]:
    if spec.net == "none":
        return ["-nic", "none"]
    args: list[str] = []
    for i, mac in enumerate(spec.macs):
        if spec.net == "user":
            backend = f"user,id=n{i}"
        elif spec.net.startswith("tap:"):
            tap = spec.net[4:] if i == 0 else f"{spec.net[4:]}-{i}"
            backend = f"tap,id=n{i},ifname={tap},script=no,downscript=no"
        else:
            raise ValueError(f"unknown net mode {spec.net!r}")
        # romfile= skips the iPXE option ROM: 0.3-0.5 s less under TCG.
        rom = "" if spec.firmware == "n" else ",romfile="
        args += ["-netdev", backend, "-device", f"virtio-net-pci,netdev=n{i},mac={mac}{rom}"]
    return args


def qemu_argv(spec: VmSpec) -> list[str]:
    append = f"console=ttyS0 panic=-1 {spec.append}".strip()
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", str(spec.memory_mb), "-smp", "1",
        "-nographic", "-no-reboot", "-serial", "mon:stdio",
    ]  # fmt: skip
    if spec.firmware:
        argv += ["-boot", spec.firmware]
    else:
        argv += ["-kernel", str(spec.kernel), "-initrd", str(spec.initrd), "-append", append]
    if spec.disk is not None:
        argv += ["-drive", f"file={spec.disk},format=raw,if=virtio,snapshot=on"]
    argv += _net_args(spec)
    argv += list(spec.extra)
    if spec.netns:
        argv = ["ip", "netns", "exec", spec.netns, *argv]
    return argv


class Vm:
    """A running guest whose serial console is appended to ``log_path``."""

    def __init__(self, spec: VmSpec, log_path: Path, argv: list[str] | None = None) -> None:
        """``argv`` runs a QEMU command line of its own (relative paths from TOP)."""
        self.spec = spec
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv or qemu_argv(spec), stdin=subprocess.PIPE, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=TOP,
        )  # fmt: skip
        self.started = time.monotonic()

    def text(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until ``pattern`` appears on the console; raise TimeoutError with the tail."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text())
            if match:
                return match
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = "QEMU exited" if self.proc.poll() is not None else f"{timeout:.0f}s passed"
                tail = "\n".join(self.text().splitlines()[-40:])
                raise TimeoutError(f"{pattern!r} not seen ({why}); console tail:\n{tail}")
            time.sleep(0.2)

    def send(self, text: str) -> None:
        """Type on the serial console."""
        if self.proc.stdin is not None:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The session holds ip-netns-exec and QEMU: kill the group, by PID.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
