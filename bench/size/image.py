"""Image size: mosnet's images by part, the references, and what each cut would save.

Reads the built images (``out/mosnet-initramfs.img``, the OVS and netroot
add-ons ``out/mosnet-ovs.img`` and ``out/mosnet-netroot.img``, and the
images with them), decompresses them and walks the newc
headers itself, so every member has its size and its bytes. Sizes:

- **unpacked**: the cpio stream (headers, names, padding) and the file bytes;
- **compressed**: the image as shipped; per part, the part compressed
  alone (newc records of that part only) and the **saving** if the part
  were left out (the whole cpio without it, compressed again, against the
  whole). Savings are what the lead can book: compression shares context
  across files, so a part alone costs more than it saves.

Every compression uses the build's own function (``initramfs.build.compress``:
zstd at ``ZSTD_LEVEL``, one thread, checksum), checked by recompressing the
default image first: it must come out at the shipped size, byte for byte. Results are cached in
``.cache/bench/compressed.json`` by the SHA-256 of the input, so a rerun on
the same images costs nothing.

The references: the busybox reference initramfs of the QEMU boot bench
(``guests.build_reference``) and dracut's network initramfs
(``dracut_ref``), both compressed the same way.

Also: the 15 largest files, the largest kernel modules, what
``mosnet-init.bin`` is made of (ELF sections; the Python bytecode Nuitka
embeds, per top-level package, when ``.cache/nuitka`` built this very
binary), whole-image alternatives (``xz -9``, ``zstd --ultra -22
--long=27``) and what they cost the guest to unpack (QEMU TCG,
``initramfs_async=0``: the kernel's "Trying to unpack" to "Freeing initrd
memory").

The parts: ``newc`` (reading), ``compress``, ``cuts`` (parts and
cuts), ``bytecode`` (mosnet-init.bin), ``guest`` (QEMU boots),
``report``.

usage: .venv/bin/python bench/size/image.py [--no-cuts] [--no-guest] [--no-dracut]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.common import dracut_ref, stats  # noqa: E402
from bench.size.bytecode import bin_breakdown  # noqa: E402
from bench.size.compress import BUILD, Compressor, alternatives  # noqa: E402
from bench.size.cuts import (  # noqa: E402
    addon_part_of,
    candidate_cuts,
    largest,
    netroot_part_of,
    part_of,
    parts_section,
    sizes_by_part,
)
from bench.size.guest import dist_mapping, guest_unpack  # noqa: E402
from bench.size.newc import Image  # noqa: E402
from bench.size.report import TARGETS, panels, report  # noqa: E402

__all__ = ["KEY", "TARGETS", "main", "panels", "references", "report", "run"]

KEY = "image_size"
TOP = Path(__file__).resolve().parents[2]
OUT = TOP / "out"
IMAGES = (
    ("default", "mosnet-initramfs.img"),
    ("addon", "mosnet-ovs.img"),
    ("ovs", "mosnet-initramfs-ovs.img"),
    ("netroot-addon", "mosnet-netroot.img"),
    ("netroot", "mosnet-initramfs-netroot.img"),
)


def run(
    runs: int = 3,
    log: Callable[[str], None] = print,
    cuts: bool = True,
    guest: bool = True,
    dracut: bool = True,
) -> dict[str, Any]:
    comp = Compressor()
    section: dict[str, Any] = {"machine": stats.machine(), "targets": TARGETS}
    images = {key: Image.load(key, OUT / name) for key, name in IMAGES if (OUT / name).is_file()}
    if "default" not in images:
        raise RuntimeError(f"{OUT / 'mosnet-initramfs.img'} missing: run ./build.sh first")
    section["images"] = {k: v.summary() for k, v in images.items()}
    default = images["default"]
    log(f"  checking that {BUILD} reproduces the shipped image")
    again = comp.size(BUILD, default.plain)
    section["recompress_check"] = {"shipped": len(default.data), "build": again, "method": BUILD}
    _measure_contents(section, images, comp, cuts, log)
    section["references"] = references(comp, log, dracut)
    unmapped: list[dict[str, Any]] = []
    if guest and os.geteuid() == 0:
        log("  what mosnet's processes map after a DHCP boot (QEMU TCG)")
        mapping = dist_mapping(default, log)
        section |= mapping
        unmapped = mapping.get("dist_unmapped", [])
    if cuts:
        log(f"  candidate cuts ({BUILD} of the image without each)")
        section["cuts"] = candidate_cuts(default, comp, unmapped)
        log("  whole-image compressors")
        section["alternatives"] = alternatives(images, comp)
    comp.save()
    if guest and os.geteuid() == 0:
        log("  guest unpack time per compressor (QEMU TCG)")
        section["guest_unpack"] = guest_unpack(default, max(1, min(runs, 3)), log)
    section["computed_compressions"] = comp.computed
    return section


def _measure_contents(
    section: dict[str, Any],
    images: dict[str, Image],
    comp: Compressor,
    cuts: bool,
    log: Callable[[str], None],
) -> None:
    """Parts of each image, the largest files and modules, mosnet-init.bin's make-up."""
    default = images["default"]
    report_json = _json(OUT / "image-report.json")
    log("  parts of the default image")
    section["parts"] = {"default": parts_section(default, part_of, comp, cuts, report_json)}
    if "addon" in images:
        section["parts"]["ovs-addon"] = parts_section(
            images["addon"], addon_part_of, comp, cuts, _json(OUT / "ovs-report.json")
        )
    if "netroot-addon" in images:
        section["parts"]["netroot-addon"] = parts_section(
            images["netroot-addon"], netroot_part_of, comp, cuts, _json(OUT / "netroot-report.json")
        )
    log("  largest files and modules")
    section["largest_files"] = largest(default, comp, 15, lambda m: True)
    section["largest_modules"] = largest(default, comp, 15, lambda m: m.name.endswith(".ko"))
    section["bin"] = bin_breakdown(default, comp)


def references(comp: Compressor, log: Callable[[str], None], dracut: bool) -> dict[str, Any]:
    from bench.qemu import guests

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bq7-size-") as tmp:
        ref = Path(tmp) / "busybox-ref.img"
        info = guests.build_reference(ref)
        img = Image.load("busybox", ref)
        out["busybox"] = img.summary() | {"parts": info["parts"], "modules": info["modules"]}
    if not dracut:
        return out
    for kind in dracut_ref.KINDS:
        try:
            path = dracut_ref.build(kind, log)
        except dracut_ref.DracutUnavailable as exc:
            out[f"dracut-{kind}"] = {"unavailable": str(exc)}
            continue
        img = Image.load(kind, path)
        members = img.members()
        parts = sizes_by_part(members, _dracut_part)
        out[f"dracut-{kind}"] = img.summary() | {"parts": parts}
    return out


def _dracut_part(name: str) -> str:
    path = "/" + name
    if "/lib/modules/" in path:
        return "modules"
    if "/lib/firmware/" in path:
        return "firmware"
    if path.startswith(("/usr/lib/x86_64-linux-gnu/", "/usr/lib64/", "/lib")):
        return "libraries"
    if path.startswith(("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/lib/systemd/")):
        return "programs"
    return "other (scripts, udev rules, config)"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="guest unpack boots per compressor")
    p.add_argument("--no-cuts", action="store_true", help="no candidate cuts or compressors")
    p.add_argument("--no-guest", action="store_true", help="no QEMU unpack timing")
    p.add_argument("--no-dracut", action="store_true", help="leave dracut's images out")
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    args = p.parse_args(argv)
    section = run(
        args.runs, cuts=not args.no_cuts, guest=not args.no_guest, dracut=not args.no_dracut
    )
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
