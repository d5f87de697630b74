"""Image size, guest boots: what mosnet's processes map, and the kernel's unpack time.

Both boot the image under QEMU TCG (``bench/qemu/guests.py``); they run only as root.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import stats
from bench.size.compress import BUILD, COMPRESSORS, recompressed_image
from bench.size.cuts import unmapped_dist
from bench.size.newc import Image

GUEST_TIMEOUT = 180.0


def dist_mapping(img: Image, log: Callable[[str], None]) -> dict[str, Any]:
    """After a DHCP boot: the dist files mosnet's processes map, and the .so files they don't.

    Empty if the boot did not tell (then no cut is based on it).
    """
    with tempfile.TemporaryDirectory(prefix="bq7-maps-") as tmp:
        copy = Path(tmp) / "mosnet.img"
        copy.write_bytes(img.data)
        try:
            from bench.qemu import guests

            mapped = guests.mapped_files(copy, Path(tmp))
        except (TimeoutError, OSError, subprocess.SubprocessError) as exc:
            log(f"  mapped files: not measured ({exc})")
            mapped = []
    if not mapped:
        return {}
    return {
        "dist_mapped": [p for p in mapped if p.startswith("/usr/lib/mosnet/")],
        "dist_unmapped": unmapped_dist(img, mapped),
    }


def guest_unpack(img: Image, runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Kernel unpack time of the default image per compressor (QEMU TCG, synchronous)."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bq7-unpack-") as tmp:
        paths = _recompressed(img, Path(tmp))
        samples = _unpack_samples(paths, runs, Path(tmp), log)
        for m, vals in samples.items():
            out[m] = {
                "bytes": paths[m].stat().st_size,
                "unpack_ms": stats.summarize(vals).to_json() if vals else None,
            }
    return out


def _recompressed(img: Image, tmp: Path) -> dict[str, Path]:
    """The image as shipped and recompressed by each of COMPRESSORS, in parallel."""
    paths = {BUILD: tmp / "build.img"}
    paths[BUILD].write_bytes(img.data)
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        made = {m: pool.submit(recompressed_image, img, m, tmp / f"{m}.img")
                for m in COMPRESSORS}  # fmt: skip
        paths |= {m: f.result() for m, f in made.items()}
    return paths


def _unpack_samples(
    paths: dict[str, Path], runs: int, tmp: Path, log: Callable[[str], None]
) -> dict[str, list[float]]:
    from bench.qemu import guests

    samples: dict[str, list[float]] = {m: [] for m in paths}
    for i in range(runs + 1):  # the first round warms up and is dropped
        for m, path in paths.items():
            ms = guests.unpack_ms(path, tmp / f"unpack-{i}.log", GUEST_TIMEOUT)
            log(
                f"  unpack {m} {'warm-up' if i == 0 else i}: "
                + ("failed" if ms is None else f"{ms:.0f} ms")
            )
            if i and ms is not None:
                samples[m].append(ms)
    return samples
