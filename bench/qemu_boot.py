"""Boot, QEMU TCG: guest uptime when the real init starts, mosnet vs busybox (vs dracut).

Every guest boots ``out/vmlinuz`` with ``out/testroot.img`` as ``/dev/vda``
(``root=/dev/vda rw``) and one virtio NIC on a tap in a namespace with a
bridge and dnsmasq (``qemu.topology.Gateway``, 10.231.7.0/24, DHCPv4 only).
Only the initramfs changes:

- **mosnet**: ``out/mosnet-initramfs.img``, DHCP mode (no static address);
- **busybox** (the reference): the busybox ``sh`` script of the native
  bench (``native_boot.busybox_init``), which also ``insmod``s virtio_pci,
  virtio_net, virtio_blk and ext4 with their dependencies from the same
  kernel tree, in the order ``initramfs.kmod`` resolves;
- **dracut**: Debian 12's dracut with network-legacy (dhclient),
  ``rd.neednet=1 ip=dhcp``, built by ``bench/dracut_ref.py`` when it can be.

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

usage: .venv/bin/python bench/qemu_boot.py [--runs 5] [--no-dracut]   (as root)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dracut_ref, native_boot, pngchart, stats  # noqa: E402
from initramfs.build import compress  # noqa: E402
from initramfs.kmod import decompress_module, load_index, resolve_modules  # noqa: E402
from initramfs.tree import Tree, write_cpio  # noqa: E402
from qemu.topology import Gateway  # noqa: E402
from qemu.vm import OUT, Vm, VmSpec  # noqa: E402

KEY = "qemu_boot"
TOP = Path(__file__).resolve().parent.parent
KERNEL_ROOT = dracut_ref.KERNEL_ROOT
RUN_TIMEOUT = 240.0  # one boot, TCG; mosnet takes ~45 s, dracut ~65 s here
DEFAULT_RUNS = 5
TARGET_RATIO = 3.0  # the native comparison's target, shown for the same ratio
NET = "10.231.7"
APPEND = "root=/dev/vda rw"
REF_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "ext4")

REAL_INIT = r"Not activating Mandatory Access Control as \S+ does not exist"
RUN_INIT = r"Run (\S+) as init process"
UNPACK_START = r"Trying to unpack rootfs image as initramfs"
UNPACK_END = r"Freeing initrd memory"
MOSNET_START = r"mosnet: mosnet-init starting"
MOSNET_TIMINGS = r"mosnet: boot timings: (.*)"
REPORT_DONE = r"^ROOT: --- routes"
_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
_TIMING = re.compile(r"([\w-]+(?: [\w-]+)*?) (\d+(?:\.\d+)?) ms")

# mosnet's phases in boot order: python = Run /init -> "mosnet-init starting";
# then its own "boot timings:" (setup .. daemon); switch_root = that line ->
# the real init's exec; "other" = what the two ends leave (log lines, gaps).
MOSNET_PHASES = (
    "python", "setup", "drivers", "network", "firewall", "root", "daemon", "switch_root",
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    initrd: Path
    append: str


@dataclass
class RunResult:
    ok: bool
    real_init_s: float | None = None
    run_init_s: float | None = None
    unpack_s: float | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""


# ---------------------------------------------------------------- pure parts


def console_lines(text: str) -> list[tuple[float | None, str]]:
    """Serial console text -> (kernel timestamp in s or None, message) per line."""
    out: list[tuple[float | None, str]] = []
    for raw in text.replace("\r", "").split("\n"):
        m = _STAMP.match(raw)
        out.append((float(m.group(1)), m.group(2)) if m else (None, raw))
    return out


def stamp_of(lines: Sequence[tuple[float | None, str]], pattern: str) -> float | None:
    """Kernel timestamp of the first timestamped line matching ``pattern``."""
    rx = re.compile(pattern)
    return next((t for t, msg in lines if t is not None and rx.search(msg)), None)


def parse_boot_timings(text: str) -> dict[str, float]:
    """``setup 163 ms, drivers 5066 ms`` -> {"setup": 163.0, "drivers": 5066.0}."""
    return {m.group(1): float(m.group(2)) for m in _TIMING.finditer(text)}


def has_lease(text: str, net: str = NET) -> bool:
    """The test root's report shows an IPv4 address of ``net``."""
    return any(line.startswith("ROOT:") and f"inet {net}." in line for line in text.splitlines())


def analyse(text: str, mosnet: bool, net: str = NET) -> RunResult:
    """One boot's console -> the figures, or why the run does not count."""
    lines = console_lines(text)
    real = stamp_of(lines, REAL_INIT)
    run_init = stamp_of(lines, RUN_INIT)
    if real is None or run_init is None:
        tail = " | ".join(m for _, m in lines if m.strip())
        return RunResult(False, error=f"real init not reached: ...{tail[-160:]}")
    if not has_lease(text, net):
        return RunResult(False, error="real init reached without an IPv4 lease")
    start, end = stamp_of(lines, UNPACK_START), stamp_of(lines, UNPACK_END)
    unpack = end - start if start is not None and end is not None else None
    res = RunResult(True, real, run_init, unpack)
    if mosnet:
        res.phases_ms = mosnet_phases(lines, run_init, real)
    return res


def mosnet_phases(
    lines: Sequence[tuple[float | None, str]], run_init: float, real: float
) -> dict[str, float]:
    """python, mosnet's own timings, switch_root and the rest, in ms (see MOSNET_PHASES)."""
    started = stamp_of(lines, MOSNET_START)
    rx = re.compile(MOSNET_TIMINGS)
    hit = next(((t, m) for t, msg in lines if t is not None and (m := rx.search(msg))), None)
    if started is None or hit is None:
        return {}
    t_line, match = hit
    own = parse_boot_timings(match.group(1))
    out: dict[str, float] = {"python": (started - run_init) * 1000}
    out.update({k: v for k, v in own.items() if k in MOSNET_PHASES})
    out["switch_root"] = (real - t_line) * 1000
    out["other"] = (real - run_init) * 1000 - sum(out.values())
    return out


def summarize_variant(runs: Sequence[RunResult]) -> dict[str, Any]:
    good = [r for r in runs if r.ok and r.real_init_s is not None]
    out: dict[str, Any] = {
        "runs": len(runs),
        "failures": len(runs) - len(good),
        "errors": sorted({r.error for r in runs if r.error})[:5],
    }
    if not good:
        return out

    def summary(values: Sequence[float | None]) -> dict[str, Any] | None:
        vals = [v for v in values if v is not None]
        return stats.summarize(vals).to_json(3) if vals else None

    out["real_init_s"] = summary([r.real_init_s for r in good])
    out["kernel_s"] = summary([r.run_init_s for r in good])
    out["initramfs_s"] = summary(
        [r.real_init_s - r.run_init_s for r in good if r.real_init_s and r.run_init_s]
    )
    out["unpack_s"] = summary([r.unpack_s for r in good])
    out["samples_s"] = [round(r.real_init_s, 3) for r in good if r.real_init_s is not None]
    names = [n for n in (*MOSNET_PHASES, "other") if any(n in r.phases_ms for r in good)]
    if names:
        out["phases_ms"] = {
            n: stats.summarize([r.phases_ms[n] for r in good if n in r.phases_ms]).to_json()
            for n in names
        }
    return out


def ratios(variants: dict[str, Any], field_: str, ref: str = "busybox") -> dict[str, float]:
    base = (variants.get(ref) or {}).get(field_)
    if not base:
        return {}
    return {
        k: round(stats.ratio(v[field_]["median"], base["median"]), 2)
        for k, v in variants.items()
        if k != ref and v.get(field_)
    }


# ------------------------------------------------------- the reference image


def reference_tree(kernel_root: Path = KERNEL_ROOT, root: str = "/dev/vda") -> Tree:
    """busybox + udhcpc + the virtio/ext4 modules: the reference initramfs."""
    kver = dracut_ref.kernel_version(kernel_root)
    moddir = kernel_root / "lib" / "modules" / kver
    closure = resolve_modules(load_index(moddir), REF_MODULES)
    if closure.missing:
        raise RuntimeError(f"{moddir}: no module {', '.join(closure.missing)}")
    tree = Tree()
    for d in ("/bin", "/proc", "/sys", "/dev", "/run", "/sysroot", "/etc", "/tmp"):
        tree.add_dir(d)
    tree.add_node("/dev/console", "c", 5, 1, 0o600)
    tree.add_file("/bin/busybox", Path(native_boot.BUSYBOX), 0o755, part="busybox")
    for applet in native_boot.busybox_applets(modules=True):
        tree.add_symlink(f"/bin/{applet}", "busybox", part="busybox")
    script = native_boot.busybox_init(root, modules=closure.names, rw=True, fstype="ext4")
    tree.add_bytes("/init", script.encode(), 0o755)
    tree.add_bytes("/udhcpc.sh", native_boot.UDHCPC_SCRIPT.encode(), 0o755)
    for name, rel in zip(closure.names, closure.paths, strict=True):
        data = decompress_module(moddir / rel)
        tree.add_bytes(f"/lib/modules/{name}.ko", data, 0o644, part="modules")
    return tree


def build_reference(out: Path, kernel_root: Path = KERNEL_ROOT) -> dict[str, Any]:
    """Write the reference image (newc, zstd like mosnet's); return what it holds."""
    tree = reference_tree(kernel_root)
    buf = io.BytesIO()
    cpio_size = write_cpio(tree, buf, 0)
    data = compress(buf.getvalue(), "zstd")
    out.write_bytes(data)
    mods = [p.name[: -len(".ko")] for p, _ in tree.items() if p.name.endswith(".ko")]
    return {
        "bytes": len(data),
        "cpio_bytes": cpio_size,
        "parts": tree.sizes_by_part(),
        "modules": mods,
    }


def unpack_ms(
    initrd: Path, log: Path, timeout: float, kernel: Path = OUT / "vmlinuz"
) -> float | None:
    """Kernel time to decompress and unpack ``initrd`` (ms), or None.

    ``initramfs_async=0`` makes the kernel unpack before going on, so the
    span from "Trying to unpack" to "Freeing initrd memory" is that work
    alone. The guest is stopped as soon as the second line is out.
    """
    spec = VmSpec(kernel=kernel, initrd=initrd, append="initramfs_async=0", net="none")
    try:
        with Vm(spec, log) as vm:
            vm.wait_for(UNPACK_END, timeout)
            lines = console_lines(vm.text())
    except TimeoutError:
        return None
    finally:
        log.unlink(missing_ok=True)
    start, end = stamp_of(lines, UNPACK_START), stamp_of(lines, UNPACK_END)
    return None if start is None or end is None else (end - start) * 1000


# What mosnet's processes have mapped once the real root runs: typed on the
# test root's shell (mostest.shell). The daemon and the proxy are forks of
# PID 1, so they map every library PID 1 had loaded by then.
_MAPS_CMD = (
    "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in "
    "@mosnet*) sed -n 's|^[^/]*\\(/[^ ]*\\).*$|BQ7-MAP \\1|p' $p/maps ;; esac; done "
    "| sort -u; echo BQ7-END; exit\n"
)


def parse_maps(text: str) -> list[str]:
    """``BQ7-MAP <path>`` lines of the console -> the mapped paths, sorted, once each."""
    return sorted({ln.split(None, 1)[1].strip() for ln in text.splitlines()
                   if ln.startswith("BQ7-MAP ") and len(ln.split()) >= 2})  # fmt: skip


def mapped_files(initrd: Path, work: Path, timeout: float = RUN_TIMEOUT) -> list[str]:
    """Files mosnet's daemon and proxy have mapped after a DHCP boot of ``initrd``."""
    gw = Gateway(name=f"bq7-maps-{os.getpid()}", workdir=work / "gw-maps", net=NET)
    gw.start()
    try:
        spec = VmSpec(
            kernel=OUT / "vmlinuz", initrd=initrd, append=f"{APPEND} mostest.shell",
            disk=OUT / "testroot.img", net="tap:tap0", netns=gw.name,
        )  # fmt: skip
        with Vm(spec, work / "maps.log") as vm:
            vm.wait_for(r"^ROOT: shell", timeout)
            vm.send(_MAPS_CMD)
            vm.wait_for(r"^BQ7-END", 60)
            return parse_maps(vm.text())
    finally:
        gw.stop()


# ------------------------------------------------------------------ the bench


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


# ------------------------------------------------------------------- report


def report(section: dict[str, Any]) -> str:
    variants: dict[str, Any] = section.get("variants", {})
    total_r: dict[str, float] = section.get("ratios", {})
    init_r: dict[str, float] = section.get("ratios_initramfs", {})
    target = float(section.get("target_ratio", TARGET_RATIO))
    rows = []
    for key, v in variants.items():
        t = v.get("real_init_s")
        if not t:
            rows.append([v.get("label", key), None, None, None, None, None, "failed", ""])
            continue
        k, i = v.get("kernel_s") or {}, v.get("initramfs_s") or {}
        ref = key == "busybox"
        rows.append([
            v.get("label", key), f"{t['median']:.2f}", f"{t['p25']:.2f}-{t['p75']:.2f}",
            f"{t['min']:.2f}-{t['max']:.2f}", f"{k.get('median', 0):.2f}",
            f"{i.get('median', 0):.2f}",
            "1 (ref)" if ref else _r(total_r.get(key)),
            "1 (ref)" if ref else _r(init_r.get(key), target),
        ])  # fmt: skip
    out = [
        f"QEMU TCG boot: guest uptime when the real init starts ({section.get('runs')} runs, s)",
        stats.table(
            ["", "median", "p25-p75", "min-max", "kernel", "initramfs", "ratio total",
             "ratio initramfs"], rows),
    ]  # fmt: skip
    mos = variants.get("mosnet", {}).get("phases_ms")
    if mos:
        out += ["", "mosnet phases (median ms; Run /init -> exec of /sbin/init)"]
        prow: list[list[object]] = [[n, p["median"], f"{p['p25']:.0f}-{p['p75']:.0f}"]
                                    for n, p in mos.items()]  # fmt: skip
        out.append(stats.table(["phase", "median", "p25-p75"], prow))
    if section.get("dracut_note"):
        out.append(section["dracut_note"])
    failures = {k: v["failures"] for k, v in variants.items() if v.get("failures")}
    if failures:
        errors = [e for v in variants.values() for e in v.get("errors", [])]
        out.append(f"failed runs: {failures}; first errors: {errors[:2]}")
    return "\n".join(out)


def _r(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "-"
    if target is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({'meets' if value <= target else 'misses'} <= {target:g})"


def panels(section: dict[str, Any]) -> list[pngchart.Panel]:
    variants: dict[str, Any] = section.get("variants", {})
    bars = []
    for i, (key, v) in enumerate(variants.items()):
        t = v.get("real_init_s")
        if not t:
            continue
        r = section.get("ratios", {}).get(key)
        note = f"\u00d7{r:.2f}" if r is not None else "reference"
        color = pngchart.PALETTE[i % len(pngchart.PALETTE)]
        bars.append(pngchart.Bar(v.get("label", key), t["median"], t["p25"], t["p75"], color, note))
    out = [pngchart.Panel("QEMU TCG boot: uptime at the real init", bars, unit="s", digits=1)]
    ibars = []
    for i, (key, v) in enumerate(variants.items()):
        t = v.get("initramfs_s")
        if t:
            r = section.get("ratios_initramfs", {}).get(key)
            note = f"\u00d7{r:.1f}" if r is not None else "reference"
            color = pngchart.PALETTE[i % len(pngchart.PALETTE)]
            label = v.get("label", key)
            ibars.append(pngchart.Bar(label, t["median"], t["p25"], t["p75"], color, note))
    ref = (variants.get("busybox") or {}).get("initramfs_s")
    target = float(section.get("target_ratio", TARGET_RATIO))
    if ibars:
        out.append(
            pngchart.Panel(
                "QEMU boot: Run /init to the real init",
                ibars,
                unit="s",
                digits=1,
                target=ref["median"] * target if ref else None,
                target_label=f"{target:g}x reference",
            )
        )
    mos = variants.get("mosnet", {}).get("phases_ms")
    if mos:
        pbars = [
            pngchart.Bar(n, p["median"], p["p25"], p["p75"], color=pngchart.PALETTE[1])
            for n, p in mos.items()
            if p["median"] > 0
        ]
        out.append(pngchart.Panel("QEMU boot phases: mosnet-init", pbars))
    return out


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
