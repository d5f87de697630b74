"""Image size, report: the text tables and the chart panels of a results section."""

from __future__ import annotations

from typing import Any

from bench.common import chart, stats
from bench.size.compress import BUILD

MB = 1_000_000
TARGETS = {"default": 15 * MB, "ovs": 25 * MB}  # zstd, as shipped (the two)


def _mb(n: float | int | None) -> str:
    return "-" if n is None else f"{n / MB:.2f}"


def report(section: dict[str, Any]) -> str:
    out = _image_lines(section)
    out += _part_lines(section)
    out += _largest_lines(section)
    out += _bin_lines(section.get("bin") or {})
    out += _unmapped_lines(section)
    out += _cut_lines(section)
    out += _compressor_lines(section)
    return "\n".join(out)


def _verdict(compressed: int, target: int | None) -> str:
    if target is None:
        return ""
    if compressed <= target:
        return f"<= {target / MB:g}: meets"
    return f"<= {target / MB:g}: misses by {(compressed - target) / MB:.2f} MB"


def _image_lines(section: dict[str, Any]) -> list[str]:
    """mosnet's images and the references, then the recompress check."""
    imgs: dict[str, Any] = section.get("images", {})
    refs: dict[str, Any] = section.get("references", {})
    targets: dict[str, int] = section.get("targets", TARGETS)
    rows = []
    for key, label in (
        ("default", "mosnet default"),
        ("ovs", "mosnet with OVS"),
        ("addon", "  OVS add-on alone"),
        ("netroot", "mosnet with netroot"),
        ("netroot-addon", "  netroot add-on alone"),
    ):
        i = imgs.get(key)
        if not i:
            continue
        verdict = _verdict(i["compressed"], targets.get(key))
        rows.append([label, _mb(i["compressed"]), _mb(i["unpacked"]), _mb(i["file_bytes"]),
                     i["files"], verdict])  # fmt: skip
    for key, r in refs.items():
        if "unavailable" in r:
            rows.append([key, None, None, None, None, "unavailable: " + r["unavailable"][:60]])
        else:
            rows.append([key, _mb(r["compressed"]), _mb(r["unpacked"]), _mb(r["file_bytes"]),
                         r["files"], ""])  # fmt: skip
    out = [
        f"image size (MB = 10^6 bytes; compressed = as shipped, {BUILD})",
        stats.table(["image", "zstd", "cpio", "file bytes", "files", "target"], rows),
    ]
    chk = section.get("recompress_check")
    if chk:
        same = "identical" if chk["shipped"] == chk.get("build") else "DIFFERS"
        out.append(
            f"recompress check: shipped {chk['shipped']} B, {chk.get('method', '')} here "
            f"{chk.get('build')} B ({same})"
        )
    return out


def _part_lines(section: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, parts in section.get("parts", {}).items():
        prow = [
            [p, _mb(v["unpacked"]), _mb(v.get("report")), _mb(v["alone_zstd"]),
             _mb(v.get("saving_zstd"))]
            for p, v in parts.items()
        ]  # fmt: skip
        out += [
            "",
            f"{key}: by part (MB)",
            stats.table(["part", "unpacked", "build report", "alone zstd", "saving if cut"], prow),
        ]
    return out


def _largest_lines(section: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if section.get("largest_files"):
        frows = [[f["path"], _mb(f["bytes"]), f["part"], _mb(f["alone_zstd"])]
                 for f in section["largest_files"]]  # fmt: skip
        out += [
            "",
            "largest files of the default image (MB)",
            stats.table(["file", "bytes", "part", "alone zstd"], frows),
        ]
    if section.get("largest_modules"):
        mrows = [[f["path"].rsplit("/", 1)[-1], _mb(f["bytes"]), _mb(f["alone_zstd"])]
                 for f in section["largest_modules"]]  # fmt: skip
        out += [
            "",
            "largest kernel modules (MB)",
            stats.table(["module", "bytes", "alone zstd"], mrows),
        ]
    return out


def _bin_lines(b: dict[str, Any]) -> list[str]:
    if not b:
        return []
    out = [
        "",
        f"mosnet-init.bin ({_mb(b['bytes'])} MB) by ELF section (MB)",
        stats.table(
            ["section", "bytes", "alone zstd"],
            [[s["name"], _mb(s["bytes"]), _mb(s["alone_zstd"])] for s in b["sections"]],
        ),
    ]
    bc = b.get("bytecode")
    if bc:
        out += [
            "",
            f"embedded Python bytecode: {bc['modules']} modules, {_mb(bc['bytes'])} MB"
            f" ({_mb(bc['alone_zstd'])} MB zstd alone), by top-level package",
            stats.table(
                ["package", "bytes", "alone zstd"],
                [[p["package"], _mb(p["bytes"]), _mb(p["alone_zstd"])] for p in bc["packages"]],
            ),
        ]
    return out


def _unmapped_lines(section: dict[str, Any]) -> list[str]:
    if section.get("dist_unmapped") is None or "dist_mapped" not in section:
        return []
    un = section["dist_unmapped"]
    return [
        "",
        f"dist .so files no mosnet process mapped after a DHCP boot: {len(un)}, "
        f"{_mb(sum(u['bytes'] for u in un))} MB unpacked (mapped: "
        f"{len(section['dist_mapped'])} files)",
        "  " + " ".join(u["path"].rsplit("/", 1)[-1] for u in un),
    ]


def _cut_lines(section: dict[str, Any]) -> list[str]:
    if not section.get("cuts"):
        return []
    return [
        "",
        f"candidate cuts on the default image: {BUILD} saving, measured (MB)",
        stats.table(
            ["cut", "unpacked", "saving zstd"],
            [[c["cut"], _mb(c["unpacked"]), _mb(c["saving_zstd"])] for c in section["cuts"]],
        ),
    ]


def _compressor_lines(section: dict[str, Any]) -> list[str]:
    alts: dict[str, Any] = section.get("alternatives", {})
    if not alts:
        return []
    gu: dict[str, Any] = section.get("guest_unpack", {})
    arow = []
    for m in alts.get("default", {}):
        u = (gu.get(m) or {}).get("unpack_ms")
        arow.append(
            [
                m,
                _mb(alts.get("default", {}).get(m)),
                _mb(alts.get("ovs", {}).get(m)),
                None if not u else f"{u['median']:.0f} [{u['p25']:.0f}-{u['p75']:.0f}]",
            ]
        )
    return [
        "",
        "whole-image compressors (MB; guest unpack: QEMU TCG, ms)",
        stats.table(["compressor", "default", "with OVS", "guest unpack"], arow),
    ]


def short_label(cut: str, width: int = 27) -> str:
    """A chart label for a cut: ``modules: xfs`` -> ``ko: xfs``, details dropped."""
    label = cut.split(" (", 1)[0]
    for long, short in (("modules: ", "ko: "), ("mosnet-init.bin: ", "bin: "),
                        ("all embedded bytecode", "all bytecode"),
                        ("every .so no mosnet process mapped", ".so not mapped"),
                        ("NIC drivers but virtio_net", "NICs but virtio_net"),
                        ("and its libraries", "+ its libraries")):  # fmt: skip
        label = label.replace(long, short)
    head, sep, rest = label.partition(": ")
    label = head + sep + rest.split(":", 1)[0]
    return label[:width]


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    out = [_size_panel(section)]
    parts = section.get("parts", {}).get("default", {})
    if parts and all(v.get("saving_zstd") is not None for v in parts.values()):
        pbars = [
            chart.Bar(p, v["saving_zstd"] / MB, color=chart.PALETTE[2],
                         note=f"alone {v['alone_zstd'] / MB:.2f}")
            for p, v in sorted(parts.items(), key=lambda kv: -kv[1]["saving_zstd"])
        ]  # fmt: skip
        out.append(chart.Panel("Default image: saving if a part is cut", pbars, "MB", digits=2))
    cuts = section.get("cuts", [])[:10]
    if cuts:
        cbars = [
            chart.Bar(short_label(c["cut"]), c["saving_zstd"] / MB, color=chart.PALETTE[3])
            for c in cuts
        ]
        out.append(chart.Panel("Largest candidate cuts: saving", cbars, unit="MB", digits=2))
    return out


def _size_panel(section: dict[str, Any]) -> chart.Panel:
    """mosnet's images against their targets, and the references."""
    imgs: dict[str, Any] = section.get("images", {})
    refs: dict[str, Any] = section.get("references", {})
    targets: dict[str, int] = section.get("targets", TARGETS)
    bars = []
    for key, label in (("default", "mosnet default"), ("ovs", "mosnet with OVS")):
        if key in imgs:
            note = f"target {targets[key] / MB:g}"
            mb = imgs[key]["compressed"] / MB
            bars.append(chart.Bar(label, mb, color=chart.PALETTE[0], note=note))
    for key, r in refs.items():
        if "compressed" in r:
            bars.append(chart.Bar(key, r["compressed"] / MB, color=chart.PALETTE[1]))
    return chart.Panel(
        "Image size as shipped",
        bars,
        unit="MB",
        digits=2,
        target=targets["default"] / MB,
        target_label="default target",
    )
