"""Daemon footprint: RSS, PSS, threads and idle CPU of mosnet's daemon in a QEMU guest.

Boots the real image under QEMU TCG (``qemu.vm.Vm``) with the test root
(``out/testroot.img``) and a tap into a gateway namespace (``bp7-f-*``,
dnsmasq on 10.213.7.0/24 with 1-hour leases, so no renewal falls into the
measured minute). The kernel line is ``root=/dev/vda rw mostest.wait=75
mostest.shell``: the test root's init waits 75 s with the daemon running,
prints ``ROOT: done`` and opens a shell on the console. The bench types into
that shell:

1. the reference is started: busybox ``udhcpc -i mos -f -s /bin/true``, a
   long-running DHCP client on the same interface that configures nothing
   (the job mosnet's daemon does for the lease, without the proxy), and a
   ``sleep`` as the floor of any process;
2. at t0 and t0 + 60 s (an idle minute) every process whose command line
   starts with ``@`` (``@mosnet-daemon``, its children ``@mosnet-proxy`` and
   ``@mosnet-watch``, and with OVS ``@ovsdb-server``/``@ovs-vswitchd``) plus
   the references print Rss
   and Pss (``/proc/<pid>/smaps_rollup``: page-table walks, exact; the
   kernel's VmRSS lags by up to 64 pages per thread), Threads (``status``)
   and utime + stime (``stat``, 1/100 s), with ``/proc/uptime``;
3. a fixed busybox shell loop runs in the guest and on the host (the same
   static busybox binary): the ratio of their CPU times is the TCG slowdown,
   and the daemon's CPU time over it is an estimate of the native figure.

Both images: ``out/mosnet-initramfs.img`` (Linux bridge) and
``out/mosnet-initramfs-ovs.img`` with ``mosbridge=ovs``.

The parts: ``guest`` (one boot, the typed commands),
``figures`` (console -> figures, medians), ``report``.

usage: .venv/bin/python bench/footprint/daemon.py [--runs N] [--keep-logs DIR]   (as root)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.common import stats  # noqa: E402
from bench.footprint.figures import HZ, TARGET_CPU_S, TARGET_RSS_MB, summarize_image  # noqa: E402
from bench.footprint.guest import (  # noqa: E402
    CAL_LOOPS,
    IDLE_S,
    IMAGES,
    WAIT_S,
    boot_once,
    host_calibration,
    image_info,
)
from bench.footprint.report import panels, report  # noqa: E402
from qemu.vm import OUT  # noqa: E402

__all__ = ["KEY", "MAX_BOOTS", "main", "panels", "report", "run"]

KEY = "daemon_footprint"
MAX_BOOTS = 2  # boots per image = min(--runs, MAX_BOOTS): one boot is ~3.5 minutes


def run(
    runs: int, log: Callable[[str], None] = print, keep_logs: Path | None = None
) -> dict[str, Any]:
    """min(runs, MAX_BOOTS) boots per image, images alternating."""
    if os.geteuid() != 0:
        raise RuntimeError("the footprint bench needs root (tap, network namespace)")
    for p in (OUT / "vmlinuz", OUT / "testroot.img", *(i[1] for i in IMAGES.values())):
        if not p.exists():
            raise RuntimeError(f"{p} missing: run ./build.sh (and qemu/mkroot.sh) first")
    boots = max(1, min(runs, MAX_BOOTS))
    work = Path(tempfile.mkdtemp(prefix="bp7-footprint-"))
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in IMAGES}
    try:
        host_cal = [host_calibration() for _ in range(3)]
        log(f"  host calibration: {[t / HZ for t in host_cal]} s CPU for {CAL_LOOPS} loops")
        for n in range(boots):
            order = list(IMAGES) if n % 2 == 0 else list(reversed(IMAGES))
            for image in order:
                results[image].append(boot_once(image, n, work, log, keep_logs))
        host_cal += [host_calibration() for _ in range(3)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    host = min(host_cal)  # the least disturbed: a busy host only adds time
    section: dict[str, Any] = {
        "machine": stats.machine(),
        "runs": boots,
        "idle_s": IDLE_S,
        "wait_s": WAIT_S,
        "targets": {"rss_mb": TARGET_RSS_MB, "cpu_s_per_idle_min": TARGET_CPU_S},
        "host_cal_ticks": host_cal,
        "images": {},
    }
    for key, (label, path, extra) in IMAGES.items():
        summary = summarize_image(results[key], host)
        summary.update(label=label, image=image_info(path), append=extra)
        section["images"][key] = summary
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1, help=f"boots per image (at most {MAX_BOOTS})")
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    p.add_argument("--keep-logs", type=Path, help="copy each boot's console log here")
    p.add_argument("--only", choices=sorted(IMAGES), help="boot one image only")
    args = p.parse_args(argv)
    if args.only:
        for k in list(IMAGES):
            if k != args.only:
                del IMAGES[k]
    section = run(args.runs, keep_logs=args.keep_logs)
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
