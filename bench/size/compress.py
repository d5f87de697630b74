"""Image size, compression: the build's own and the alternatives, sizes cached.

Every compression of the build's kind uses ``initramfs.build.compress``
in-process, so the sizes are exactly what ./build.sh ships. Sizes are cached
in ``.cache/bench/compressed.json`` by (method, SHA-256 of the input).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.size.newc import Image
from initramfs.build import ZSTD_LEVEL, compress

TOP = Path(__file__).resolve().parents[2]
CACHE = TOP / ".cache" / "bench" / "compressed.json"

# The build's own compression, then the alternatives tried on whole images:
# name -> argv (stdin -> stdout).
BUILD = f"zstd-{ZSTD_LEVEL} (build)"
COMPRESSORS: dict[str, tuple[str, ...]] = {
    "zstd-19": ("zstd", "-19", "-T1", "-q", "-c"),
    "zstd-22-long": ("zstd", "--ultra", "-22", "--long=27", "-T1", "-q", "-c"),
    "xz-9": ("xz", "-9", "--check=crc32", "-T1", "-q", "-c"),
}


def compressed(method: str, data: bytes) -> bytes:
    """``data`` compressed by ``method`` (BUILD or a key of COMPRESSORS)."""
    if method == BUILD:
        return compress(data, "zstd", ZSTD_LEVEL)
    return subprocess.run(COMPRESSORS[method], input=data, capture_output=True, check=True).stdout


class Compressor:
    """Compressed sizes, cached by (compressor, SHA-256 of the input); jobs in parallel."""

    def __init__(self, cache: Path = CACHE) -> None:
        self.cache_path = cache
        try:
            self.cache: dict[str, int] = json.loads(cache.read_text())
        except (OSError, ValueError):
            self.cache = {}
        self.computed = 0

    @staticmethod
    def key(method: str, data: bytes) -> str:
        return f"{method}:{hashlib.sha256(data).hexdigest()}"

    def size(self, method: str, data: bytes) -> int:
        k = self.key(method, data)
        if k not in self.cache:
            self.cache[k] = len(compressed(method, data))
            self.computed += 1
        return self.cache[k]

    def many(self, jobs: dict[str, tuple[str, bytes]]) -> dict[str, int]:
        """{label: (method, data)} -> {label: size}, as many at once as there are cores."""
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            futures = {k: pool.submit(self.size, m, d) for k, (m, d) in jobs.items()}
            return {k: f.result() for k, f in futures.items()}

    def save(self) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=0, sort_keys=True))
        os.replace(tmp, self.cache_path)


def alternatives(images: dict[str, Image], comp: Compressor) -> dict[str, dict[str, int]]:
    """Each image's cpio streams recompressed whole by each compressor (summed per image)."""
    jobs = {}
    for key in ("default", "addon"):
        if key in images:
            for method in (BUILD, *COMPRESSORS):
                for i, s in enumerate(images[key].segments):
                    jobs[f"{key}|{method}|{i}"] = (method, s.plain)
    got = comp.many(jobs)
    out: dict[str, dict[str, int]] = {}
    for k, size in got.items():
        key, method, _ = k.split("|")
        out.setdefault(key, {})
        out[key][method] = out[key].get(method, 0) + size
    if "default" in out and "addon" in out:
        out["ovs"] = {m: out["default"][m] + out["addon"][m] for m in out["default"]}
    return out


def recompressed_image(img: Image, method: str, dest: Path) -> Path:
    """``img`` with each stream recompressed by ``method`` (for the guest unpack test)."""
    dest.write_bytes(b"".join(compressed(method, s.plain) for s in img.segments))
    return dest
