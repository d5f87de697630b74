"""Boot critical path, native: the real initramfs as PID 1 of a throw-away namespace.

Each run unpacks ``out/mosnet-initramfs.img`` into a fresh tmpfs, and starts
``/mosnet-init`` there as PID 1 of new PID, mount, UTS and IPC namespaces,
inside a new network namespace whose only NIC ``eth0`` is a veth to a bridge
with dnsmasq. The clock runs from the exec of ``/mosnet-init`` (a static
stamp program prints CLOCK_MONOTONIC and execs it in place) to the exec of
the real init (``/sbin/init`` of a small ext4 root on a read-only loop
device, the same stamp program), with an IPv4 lease on the namespace.

The reference is a busybox ``sh`` script as ``/init`` doing the same job:
mount the API filesystems, ``udhcpc`` on eth0, mount the same root,
``switch_root``. mosnet's phases come from its own log lines in /dev/kmsg.

mosnet-init reads root= and ip= from /proc/cmdline, which a namespace cannot
change, so an LD_PRELOAD shim (native/cmdline_preload.c) redirects that one
open to a file in the image copy. The host kernel (6.18) does not match the
image's modules (6.1): coldplug finds nothing to load, as on a kernel with
everything built in.

The parts: ``common.busybox_ref`` (the reference's /init), ``lab`` (staging,
namespaces, one boot), ``host``, ``phases``, ``report``.

usage: .venv/bin/python bench/native/boot.py [--runs N]   (as root)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.common import stats  # noqa: E402
from bench.native.lab import bench  # noqa: E402
from bench.native.phases import RunResult, summarize_variant  # noqa: E402
from bench.native.report import TARGET_RATIO, median_total, panels, report  # noqa: E402

__all__ = ["KEY", "main", "panels", "report", "run"]

KEY = "native_boot"


def run(
    runs: int, log: Callable[[str], None] = print, keep_logs: Path | None = None
) -> dict[str, Any]:
    """Warm-up (discarded), then ``runs`` rounds, variants rotated each round."""
    if os.geteuid() != 0:
        raise RuntimeError("the native boot bench needs root (namespaces, mounts, loop)")
    with bench(log, keep_logs) as b:
        results: dict[str, list[RunResult]] = {v.key: [] for v in b.variants}
        for v in b.variants:
            r = b.run_once(v)
            log(f"  warm-up {v.key}: {_brief(r)}")
        for i in range(runs):
            k = i % len(b.variants)
            for v in b.variants[k:] + b.variants[:k]:
                r = b.run_once(v)
                results[v.key].append(r)
                log(f"  run {i + 1}/{runs} {v.key}: {_brief(r)}")
        section: dict[str, Any] = {
            "machine": stats.machine(),
            "runs": runs,
            "image": b.image_info,
            "cmdline": b.cmdline,
            "target_ratio": TARGET_RATIO,
            "global_sysctls_restored": sorted(b.sysctl_changes),
            "variants": {},
        }
        for v in b.variants:
            summary = summarize_variant(results[v.key], v.phases)
            summary["label"] = v.label
            section["variants"][v.key] = summary
    ref = median_total(section, "busybox")
    section["ratios"] = {
        k: round(stats.ratio(m, ref), 2)
        for k in section["variants"]
        if k != "busybox" and ref is not None and (m := median_total(section, k)) is not None
    }
    acd = median_total(section, "busybox_acd")  # the reference with mosnet's ARP check
    section["ratios_same_check"] = {
        k: round(stats.ratio(m, acd), 2)
        for k in section["variants"]
        if k.startswith("mosnet") and acd is not None and (m := median_total(section, k))
    }
    return section


def _brief(r: RunResult) -> str:
    return f"{r.total_ms:.0f} ms" if r.ok and r.total_ms is not None else r.error


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    p.add_argument("--keep-logs", type=Path, help="write each run's output and kmsg lines here")
    args = p.parse_args(argv)
    section = run(args.runs, keep_logs=args.keep_logs)
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
