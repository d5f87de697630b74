"""Boot, QEMU TCG: guest uptime when the real init starts, mosnet vs busybox (vs dracut).

Every guest boots ``out/vmlinuz`` with ``out/testroot.img`` as ``/dev/vda``
(``root=/dev/vda rw``) and one virtio NIC on a tap in a namespace with a
bridge and dnsmasq (``qemu.topology.Gateway``, 10.231.7.0/24, DHCPv4 only).
Only the initramfs changes:

- **mosnet**: ``out/mosnet-initramfs.img``, DHCP mode (no static address);
- **busybox** (the reference): the busybox ``sh`` script of the native
  bench (``busybox_ref.busybox_init``), which also ``insmod``s virtio_pci,
  virtio_net, virtio_blk and ext4 with their dependencies from the same
  kernel tree, in the order ``initramfs.kmod`` resolves;
- **dracut**: Debian 12's dracut with network-legacy (dhclient),
  ``rd.neednet=1 ip=dhcp``, built by ``bench/common/dracut_ref.py`` when it can be.

**The marker.** Debian's kernel has TOMOYO built in; at the first
``execve("/sbin/init")`` of the boot it logs ``Not activating Mandatory
Access Control as /sbin/tomoyo-init does not exist.`` before the program
runs. That line carries the kernel's own timestamp on the serial console
(``[   31.873199]``), so it is the guest uptime when the real init starts,
the same event for all three (mosnet, busybox's ``switch_root`` and dracut
all exec ``/sbin/init``), with nothing added to any of them. The test root's
init then prints ``ROOT: real init running as pid 1`` and its report; the
run counts only if the report shows the DHCP lease.

Phases from the same console: ``kernel`` = uptime at ``Run /init as init
process`` (the initramfs is unpacked before it), ``initramfs`` = from there
to the real init. mosnet's own phases come from its ``boot timings:`` line.

The parts: ``console`` (console -> figures), ``guests`` (the
reference image, one-off boots), ``report``.

usage: .venv/bin/python bench/qemu/boot.py [--runs 5] [--no-dracut]   (as root)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.common import dracut_ref, stats  # noqa: E402
from bench.qemu.console import (  # noqa: E402
    NET,
    REAL_INIT,
    REPORT_DONE,
    RunResult,
    analyse,
    ratios,
    summarize_variant,
)
from bench.qemu.guests import APPEND, RUN_TIMEOUT, build_reference  # noqa: E402
from bench.qemu.report import TARGET_RATIO, panels, report  # noqa: E402
from qemu.topology import Gateway  # noqa: E402
from qemu.vm import OUT, Vm, VmSpec  # noqa: E402

__all__ = ["DEFAULT_RUNS", "KEY", "main", "panels", "report", "run"]

KEY = "qemu_boot"
TOP = Path(__file__).resolve().parents[2]
DEFAULT_RUNS = 5


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    initrd: Path
    append: str


def _snapshot(src: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """Copy an input into the work dir (a rebuild meanwhile must not mix images)."""
    if not src.is_file():
        raise RuntimeError(f"{src} missing: run ./build.sh first")
    dst = work / src.name
    shutil.copyfile(src, dst)
    data = dst.read_bytes()
    info = {
        "path": str(src.relative_to(TOP)) if src.is_relative_to(TOP) else str(src),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest()[:16],
        "mtime": time.strftime("%Y-%m-%d %H:%M", time.localtime(src.stat().st_mtime)),
    }
    return dst, info


class QemuBench:
    def __init__(
        self, work: Path, log: Callable[[str], None], dracut: bool, keep_logs: Path | None
    ) -> None:
        self.work = work
        self.log = log
        self.want_dracut = dracut
        self.keep_logs = keep_logs
        self.count = 0
        self.gateway: Gateway | None = None
        self.kernel = work / "vmlinuz"
        self.root = work / "testroot.img"
        self.variants: list[Variant] = []
        self.images: dict[str, Any] = {}
        self.dracut_note = ""

    def setup(self) -> None:
        for tool in ("qemu-system-x86_64", "ip", "dnsmasq", "zstd"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"needs {tool}")
        self.kernel, self.images["kernel"] = _snapshot(OUT / "vmlinuz", self.work)
        self.root, self.images["root"] = _snapshot(OUT / "testroot.img", self.work)
        mosnet, self.images["mosnet"] = _snapshot(OUT / "mosnet-initramfs.img", self.work)
        ref = self.work / "busybox-ref.img"
        self.images["busybox"] = build_reference(ref)
        self.variants = [
            Variant("busybox", "busybox + udhcpc (ref)", ref, APPEND),
            Variant("mosnet", "mosnet-init (DHCP)", mosnet, APPEND),
        ]
        if self.want_dracut:
            try:
                path = dracut_ref.build("drivers", self.log)
                img, self.images["dracut"] = _snapshot(path, self.work)
                append = f"{APPEND} {dracut_ref.CMDLINE}"
                self.variants.append(Variant("dracut", "dracut network-legacy", img, append))
            except dracut_ref.DracutUnavailable as exc:
                self.dracut_note = f"dracut column left out: {exc}"
                self.log("  " + self.dracut_note)
        self.gateway = Gateway(name=f"bq7-gw-{os.getpid()}", workdir=self.work / "gw", net=NET)
        self.gateway.start()

    def run_once(self, v: Variant) -> RunResult:
        assert self.gateway is not None
        self.count += 1
        log = self.work / f"{self.count:03d}-{v.key}.log"
        spec = VmSpec(
            kernel=self.kernel, initrd=v.initrd, append=v.append, disk=self.root,
            net="tap:tap0", netns=self.gateway.name,
        )  # fmt: skip
        with Vm(spec, log) as vm:
            try:
                vm.wait_for(REPORT_DONE, RUN_TIMEOUT)
            except TimeoutError as exc:
                res = RunResult(False, error=str(exc).split(";")[0])
            else:
                res = analyse(vm.text(), mosnet=v.key == "mosnet")
        if self.keep_logs is not None:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, self.keep_logs / log.name)
        log.unlink(missing_ok=True)
        return res

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None


@contextlib.contextmanager
def bench(log: Callable[[str], None], dracut: bool, keep_logs: Path | None) -> Iterator[QemuBench]:
    work = Path(tempfile.mkdtemp(prefix="bq7-qemu-"))
    b = QemuBench(work, log, dracut, keep_logs)
    try:
        b.setup()
        yield b
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


def run(
    runs: int = DEFAULT_RUNS,
    log: Callable[[str], None] = print,
    dracut: bool = True,
    keep_logs: Path | None = None,
) -> dict[str, Any]:
    """Warm-up (discarded), then ``runs`` rounds, variants rotated each round."""
    if os.geteuid() != 0:
        raise RuntimeError("the QEMU boot bench needs root (tap, network namespace)")
    with bench(log, dracut, keep_logs) as b:
        results: dict[str, list[RunResult]] = {v.key: [] for v in b.variants}
        for v in b.variants:
            log(f"  warm-up {v.key}: {_brief(b.run_once(v))}")
        for i in range(runs):
            k = i % len(b.variants)
            for v in b.variants[k:] + b.variants[:k]:
                r = b.run_once(v)
                results[v.key].append(r)
                log(f"  run {i + 1}/{runs} {v.key}: {_brief(r)}")
        section: dict[str, Any] = {
            "machine": stats.machine(),
            "runs": runs,
            "images": b.images,
            "marker": REAL_INIT,
            "target_ratio": TARGET_RATIO,
            "variants": {},
        }
        if b.dracut_note:
            section["dracut_note"] = b.dracut_note
        for v in b.variants:
            summary = summarize_variant(results[v.key])
            summary["label"] = v.label
            summary["append"] = v.append
            section["variants"][v.key] = summary
    section["ratios"] = ratios(section["variants"], "real_init_s")
    section["ratios_initramfs"] = ratios(section["variants"], "initramfs_s")
    return section


def _brief(r: RunResult) -> str:
    if not r.ok or r.real_init_s is None:
        return r.error
    return f"real init at {r.real_init_s:.2f} s (kernel {r.run_init_s or 0:.2f} s)"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    p.add_argument("--no-dracut", action="store_true", help="leave the dracut column out")
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    p.add_argument("--keep-logs", type=Path, help="copy each boot's console log here")
    args = p.parse_args(argv)
    section = run(args.runs, dracut=not args.no_dracut, keep_logs=args.keep_logs)
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
