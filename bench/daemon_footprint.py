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
   starts with ``@`` (``@mosnet-daemon``, its child ``@mosnet-proxy``, and with
   OVS ``@ovsdb-server``/``@ovs-vswitchd``) plus the references print Rss
   and Pss (``/proc/<pid>/smaps_rollup``: page-table walks, exact; the
   kernel's VmRSS lags by up to 64 pages per thread), Threads (``status``)
   and utime + stime (``stat``, 1/100 s), with ``/proc/uptime``;
3. a fixed busybox shell loop runs in the guest and on the host (the same
   static busybox binary): the ratio of their CPU times is the TCG slowdown,
   and the daemon's CPU time over it is an estimate of the native figure.

Both images: ``out/mosnet-initramfs.img`` (Linux bridge) and
``out/mosnet-initramfs-ovs.img`` with ``mosbridge=ovs``.

usage: .venv/bin/python bench/daemon_footprint.py [--runs N] [--keep-logs DIR]   (as root)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import pngchart, stats  # noqa: E402
from qemu.topology import Gateway  # noqa: E402
from qemu.vm import OUT, Vm, VmSpec  # noqa: E402

KEY = "daemon_footprint"
HZ = 100  # USER_HZ on x86: /proc/<pid>/stat counts 1/100 s
WAIT_S = 75  # mostest.wait: the daemon settles before the shell opens
IDLE_S = 60
BOOT_TIMEOUT = 300.0  # TCG boot to "ROOT: done" (+ WAIT_S)
MAX_BOOTS = 2  # boots per image = min(--runs, MAX_BOOTS): one boot is ~3.5 minutes
CAL_LOOPS = 200_000  # busybox sh loop for the TCG calibration
TARGET_RSS_MB = 40.0
TARGET_CPU_S = 0.5  # per idle minute
BUSYBOX = "/bin/busybox"
NET = "10.213.7"

IMAGES: dict[str, tuple[str, Path, str]] = {
    # key: (label, initrd, extra kernel arguments)
    "linux": ("Linux bridge", OUT / "mosnet-initramfs.img", ""),
    "ovs": ("Open vSwitch", OUT / "mosnet-initramfs-ovs.img", "mosbridge=ovs"),
}
# process name -> (label, group); the group sums are reported too
PROCESSES: dict[str, tuple[str, str]] = {
    "mosnet-daemon": ("@mosnet-daemon", "mosnet"),
    "mosnet-proxy": ("@mosnet-proxy", "mosnet"),
    "ovsdb-server": ("@ovsdb-server", "ovs"),
    "ovs-vswitchd": ("@ovs-vswitchd", "ovs"),
    "udhcpc": ("busybox udhcpc (reference)", "reference"),
    "sleep": ("busybox sleep (floor)", "floor"),
}

# Typed into the guest shell. Output markers are built at run time ("FP-$((40+2))")
# so the echo of the typed text never matches the patterns.
FP_FUNC = (
    "fp() { for d in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $d/cmdline 2>/dev/null); "
    'case "$c" in @*|udhcpc*|"sleep 86400"*) '
    'echo "F""P $1 ${d#/proc/} up=$(cut -d" " -f1 /proc/uptime)'
    " rss=$(sed -n 's/^Rss:[^0-9]*\\([0-9]*\\).*/\\1/p' $d/smaps_rollup)"
    " thr=$(sed -n 's/^Threads:[^0-9]*\\([0-9]*\\).*/\\1/p' $d/status)"
    " pss=$(sed -n 's/^Pss:[^0-9]*\\([0-9]*\\).*/\\1/p' $d/smaps_rollup)"
    ' cmd=$c stat=$(cat $d/stat)"; for t in $d/task/*; do echo "F""PT $1 ${d#/proc/} ${t##*/}'
    " vcs=$(sed -n 's/^voluntary_ctxt_switches:[^0-9]*\\([0-9]*\\).*/\\1/p' $t/status)"
    ' stat=$(cat $t/stat)"; done;; esac; done; }\n'
)
CAL_CMD = (
    f'i=0; while [ $i -lt {CAL_LOOPS} ]; do i=$((i+1)); done; echo "FPCAL $(cat /proc/$$/stat)"'
)
MEASURE = (
    "udhcpc -i mos -f -s /bin/true >/dev/null 2>&1 & sleep 86400 & sleep 8; "
    f"fp t0; sleep {IDLE_S}; fp t1; sh -c '{CAL_CMD}'; echo FP-$((40+2))-END\n"
)
FP_LINE = re.compile(
    r"^FP (t\d) (\d+) up=([\d.]+) rss=(\d*) thr=(\d*) pss=(\d*) cmd=(.*?) stat=(\d+ \(.*\) .*)$",
    re.MULTILINE,
)
FPT_LINE = re.compile(r"^FPT (t\d) (\d+) (\d+) vcs=(\d*) stat=(\d+ \(.*\) .*)$", re.MULTILINE)
CAL_LINE = re.compile(r"^FPCAL (\d+ \(.*\) .*)$", re.MULTILINE)


# ---------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class ProcSample:
    tag: str  # t0 or t1
    pid: int
    uptime: float
    rss_kb: int | None
    threads: int | None
    pss_kb: int | None
    cmdline: str
    cpu_ticks: int


@dataclass(frozen=True)
class ThreadSample:
    tag: str
    pid: int
    tid: int
    wakeups: int | None  # voluntary context switches: each is a sleep, so a wake-up
    cpu_ticks: int


def stat_ticks(stat: str) -> int:
    """utime + stime (all threads) of a /proc/<pid>/stat line; comm may hold spaces."""
    tail = stat.rsplit(")", 1)
    if len(tail) != 2:
        raise ValueError(f"not a /proc/<pid>/stat line: {stat[:60]!r}")
    fields = tail[1].split()
    if len(fields) < 13:
        raise ValueError(f"/proc/<pid>/stat line too short: {stat[:60]!r}")
    return int(fields[11]) + int(fields[12])


def process_name(cmdline: str) -> str | None:
    """The PROCESSES key for a command line (NULs as spaces), or None."""
    words = cmdline.split()
    if not words:
        return None
    first = words[0]
    if first.startswith("@"):
        name = first[1:]
        return name if name in PROCESSES else None
    base = os.path.basename(first)
    if base == "udhcpc" or base == "busybox" and words[1:2] == ["udhcpc"]:
        return "udhcpc"
    if base == "sleep" and words[1:2] == ["86400"]:
        return "sleep"
    return None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_samples(console: str) -> list[ProcSample]:
    """Every ``FP`` line the guest printed."""
    out = []
    for m in FP_LINE.finditer(console.replace("\r", "")):
        tag, pid, up, rss, thr, pss, cmd, stat = m.groups()
        out.append(ProcSample(tag, int(pid), float(up), _int(rss), _int(thr), _int(pss),
                              cmd.strip(), stat_ticks(stat)))  # fmt: skip
    return out


def parse_threads(console: str) -> list[ThreadSample]:
    """Every ``FPT`` line (one per thread of a measured process)."""
    out = []
    for m in FPT_LINE.finditer(console.replace("\r", "")):
        tag, pid, tid, vcs, stat = m.groups()
        out.append(ThreadSample(tag, int(pid), int(tid), _int(vcs), stat_ticks(stat)))
    return out


def thread_figures(
    threads: Sequence[ThreadSample], pid: int, interval: float
) -> list[dict[str, Any]]:
    """CPU and wake-ups per minute of each thread of ``pid`` seen at t0 and t1."""
    at: dict[str, dict[int, ThreadSample]] = {}
    for t in threads:
        if t.pid == pid:
            at.setdefault(t.tag, {})[t.tid] = t
    out = []
    for tid in sorted(set(at.get("t0", {})) & set(at.get("t1", {}))):
        a, b = at["t0"][tid], at["t1"][tid]
        fig: dict[str, Any] = {
            "tid": tid,
            "cpu_s_per_min": round((b.cpu_ticks - a.cpu_ticks) / HZ * 60 / interval, 3),
        }
        if a.wakeups is not None and b.wakeups is not None:
            fig["wakeups_per_min"] = round((b.wakeups - a.wakeups) * 60 / interval, 1)
        out.append(fig)
    return out


def idle_figures(
    samples: Sequence[ProcSample], threads: Sequence[ThreadSample] = ()
) -> dict[str, dict[str, Any]]:
    """Per process name: memory at t1, and CPU over t0..t1 scaled to one minute.

    A process seen at t1 under another PID than at t0 (a restarted proxy) has
    no CPU figure, only ``restarted``. With ``threads``, each thread's CPU
    and wake-ups per minute too, and their sum as the process's wake-ups.
    """
    by: dict[str, dict[str, ProcSample]] = {}
    for s in samples:
        name = process_name(s.cmdline)
        if name is not None:
            by.setdefault(name, {}).setdefault(s.tag, s)  # the first of a name per tag
    out: dict[str, dict[str, Any]] = {}
    for name, tags in by.items():
        t0, t1 = tags.get("t0"), tags.get("t1")
        last = t1 or t0
        assert last is not None
        fig: dict[str, Any] = {
            "pid": last.pid,
            "rss_kb": last.rss_kb,
            "pss_kb": last.pss_kb,
            "threads": last.threads,
        }
        if t0 is not None and t1 is not None:
            if t0.pid != t1.pid:
                fig["restarted"] = True
            else:
                interval = t1.uptime - t0.uptime
                cpu = (t1.cpu_ticks - t0.cpu_ticks) / HZ
                fig["interval_s"] = round(interval, 2)
                fig["cpu_s"] = round(cpu, 3)
                if interval > 0:
                    fig["cpu_s_per_min"] = round(cpu * 60 / interval, 3)
                    detail = thread_figures(threads, t1.pid, interval)
                    if detail:
                        fig["threads_detail"] = detail
                        wakes = [d.get("wakeups_per_min") for d in detail]
                        if all(w is not None for w in wakes):
                            fig["wakeups_per_min"] = round(sum(w or 0.0 for w in wakes), 1)
                if t0.rss_kb is not None and t1.rss_kb is not None:
                    fig["rss_growth_kb"] = t1.rss_kb - t0.rss_kb
        out[name] = fig
    return out


def group_sums(figs: dict[str, dict[str, Any]], group: str) -> dict[str, Any] | None:
    """RSS, PSS, threads and CPU summed over the processes of ``group``."""
    members = [f for n, f in figs.items() if PROCESSES[n][1] == group]
    if not members:
        return None
    out: dict[str, Any] = {"processes": len(members)}
    for k in ("rss_kb", "pss_kb", "threads", "cpu_s_per_min", "wakeups_per_min"):
        vals = [f.get(k) for f in members]
        if all(v is not None for v in vals):
            out[k] = round(sum(float(v) for v in vals if v is not None), 3)
    return out


def tcg_factor(guest_ticks: int, host_ticks: int) -> float | None:
    """How much slower the guest ran the same busybox loop (None if unmeasurable)."""
    if guest_ticks <= 0 or host_ticks <= 0:
        return None
    return guest_ticks / host_ticks


# ---------------------------------------------------------------- the boots


def host_calibration() -> int:
    """CPU ticks of the calibration loop on the host, same busybox binary."""
    res = subprocess.run([BUSYBOX, "sh", "-c", CAL_CMD], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    m = CAL_LINE.search(res.stdout)
    if not m:
        raise RuntimeError(f"calibration printed nothing: {res.stdout!r}")
    return stat_ticks(m.group(1))


def _dnsmasq(gw: Gateway) -> None:
    """Like Gateway.start_dnsmasq, with 1-hour leases: T1 is 30 minutes away."""
    argv = [
        "ip", "netns", "exec", gw.name, "dnsmasq", "--keep-in-foreground",
        "--conf-file=/dev/null", "--user=root", "--bind-interfaces", "--interface=br0",
        "--except-interface=lo", "--no-ping", "--dhcp-authoritative", "--no-resolv",
        "--no-hosts", f"--listen-address={gw.address}",
        f"--dhcp-range={gw.net}.100,{gw.net}.150,255.255.255.0,1h",
        f"--dhcp-option=option:router,{gw.address}",
        f"--dhcp-option=option:dns-server,{gw.address}",
        f"--dhcp-leasefile={gw.workdir / 'leases'}", "--log-dhcp",
        f"--log-facility={gw.dnsmasq_log}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    gw.pids.append(proc.pid)  # Gateway.stop kills its process group by this PID
    end = time.monotonic() + 10
    while not gw.dnsmasq_log.exists() and time.monotonic() < end:
        time.sleep(0.05)


def boot_once(
    image: str, n: int, work: Path, log: Callable[[str], None], keep: Path | None
) -> dict[str, Any]:
    label, initrd, extra = IMAGES[image]
    gw = Gateway(name=f"bp7-f-{os.getpid() % 100000}-{n}", workdir=work / f"gw-{image}-{n}",
                 net=NET)  # fmt: skip
    console = work / f"console-{image}-{n}.log"
    append = f"rdinit=/mosnet-init root=/dev/vda rw mostest.wait={WAIT_S} mostest.shell {extra}"
    spec = VmSpec(initrd=initrd, append=append.strip(), disk=OUT / "testroot.img",
                  net="tap:tap0", netns=gw.name)  # fmt: skip
    t_start = time.monotonic()
    try:
        gw.start(dhcp=False)
        _dnsmasq(gw)
        with Vm(spec, console) as vm:
            vm.wait_for(r"^ROOT: waiting", BOOT_TIMEOUT)
            booted = time.monotonic() - t_start
            vm.wait_for(r"^ROOT: shell", WAIT_S + 120)
            time.sleep(1.0)
            vm.send(FP_FUNC)
            time.sleep(0.5)
            vm.send(MEASURE)
            vm.wait_for(r"^FP-42-END", IDLE_S + 240)
            text = vm.text()
    finally:
        gw.stop()
        if keep is not None and console.exists():
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(console, keep / console.name)
    figs = idle_figures(parse_samples(text), parse_threads(text))
    cal = CAL_LINE.search(text.replace("\r", ""))
    out: dict[str, Any] = {
        "image_mtime": image_info(initrd)["mtime"],  # out/ may be rebuilt between boots
        "boot_s": round(booted, 1),
        "processes": figs,
        "guest_cal_ticks": stat_ticks(cal.group(1)) if cal else None,
    }
    missing = [p for p in ("mosnet-daemon", "mosnet-proxy", "udhcpc") if p not in figs]
    if image == "ovs":
        missing += [p for p in ("ovsdb-server", "ovs-vswitchd") if p not in figs]
    if missing:
        out["missing"] = missing
    log(f"  {label} boot {n}: {_brief(out)}")
    return out


def _brief(r: dict[str, Any]) -> str:
    parts = []
    for name, f in r["processes"].items():
        rss = f.get("rss_kb")
        cpu = f.get("cpu_s")
        parts.append(
            f"{name} {rss / 1024 if rss else 0:.1f} MB {cpu if cpu is not None else '?'} s"
        )
    if r.get("missing"):
        parts.append(f"missing {r['missing']}")
    return "; ".join(parts)


def _median(vals: Sequence[float | None]) -> float | None:
    good = [float(v) for v in vals if v is not None]
    return round(stats.median(good), 3) if good else None


def summarize_image(boots: Sequence[dict[str, Any]], host_ticks: int) -> dict[str, Any]:
    """Medians over the boots, per process and per group, and the TCG estimate."""
    procs: dict[str, Any] = {}
    names = [n for n in PROCESSES if any(n in b["processes"] for b in boots)]
    for name in names:
        figs = [b["processes"][name] for b in boots if name in b["processes"]]
        entry: dict[str, Any] = {"label": PROCESSES[name][0], "boots": len(figs)}
        for k in ("rss_kb", "pss_kb", "threads", "cpu_s", "cpu_s_per_min", "wakeups_per_min",
                  "rss_growth_kb"):  # fmt: skip
            entry[k] = _median([f.get(k) for f in figs])
        entry["threads_detail"] = [f.get("threads_detail", []) for f in figs]
        if any(f.get("restarted") for f in figs):
            entry["restarted"] = sum(1 for f in figs if f.get("restarted"))
        procs[name] = entry
    groups: dict[str, Any] = {}
    for g in ("mosnet", "ovs", "reference"):
        sums = [s for b in boots if (s := group_sums(b["processes"], g))]
        if sums:
            groups[g] = {k: _median([s.get(k) for s in sums])
                         for k in ("rss_kb", "pss_kb", "threads", "cpu_s_per_min",
                                   "wakeups_per_min")}  # fmt: skip
    factors = [tcg_factor(b["guest_cal_ticks"] or 0, host_ticks) for b in boots]
    factor = _median(factors)
    out: dict[str, Any] = {
        "boots": len(boots),
        "boot_s": _median([b.get("boot_s") for b in boots]),
        "processes": procs,
        "groups": groups,
        "tcg_factor": factor,
    }
    mos = groups.get("mosnet", {})
    ref = procs.get("udhcpc", {})
    if mos:
        cpu = mos.get("cpu_s_per_min")
        if factor and cpu is not None:
            out["mosnet_cpu_s_per_min_native_estimate"] = round(cpu / factor, 4)
        ratios: dict[str, float] = {}
        for k in ("rss_kb", "pss_kb"):
            if mos.get(k) is not None and ref.get(k):
                ratios[k] = round(stats.ratio(mos[k], ref[k]), 1)
        out["ratio_vs_udhcpc"] = ratios
        out["verdict"] = {
            "rss_sum_ok": mos.get("rss_kb") is not None and mos["rss_kb"] / 1024 <= TARGET_RSS_MB,
            "pss_sum_ok": mos.get("pss_kb") is not None and mos["pss_kb"] / 1024 <= TARGET_RSS_MB,
            "cpu_tcg_ok": cpu is not None and cpu <= TARGET_CPU_S,
            "cpu_native_estimate_ok": out.get("mosnet_cpu_s_per_min_native_estimate", 1e9)
            <= TARGET_CPU_S,
        }
    builds = sorted({str(b["image_mtime"]) for b in boots if b.get("image_mtime")})
    if len(builds) > 1:
        out["image_rebuilt_during_run"] = builds
    errors = sorted({m for b in boots for m in b.get("missing", [])})
    if errors:
        out["missing"] = errors
    return out


def image_info(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.relative_to(OUT.parent)), "bytes": st.st_size,
            "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime))}  # fmt: skip


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


# ------------------------------------------------------------------- report


def _n(v: float | None) -> int | None:
    return None if v is None else round(v)


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def report(section: dict[str, Any]) -> str:
    out = [f"daemon footprint in a QEMU TCG guest, idle {section.get('idle_s')} s after "
           f"{section.get('wait_s')} s of running ({section.get('runs')} boot(s) per image, "
           "median)"]  # fmt: skip
    for img in section.get("images", {}).values():
        rows = []
        procs = img.get("processes", {})
        for p in procs.values():
            label = p["label"] + (" (restarted)" if p.get("restarted") else "")
            rows.append([label, _mb(p.get("rss_kb")), _mb(p.get("pss_kb")), _n(p.get("threads")),
                         p.get("cpu_s_per_min"), _n(p.get("wakeups_per_min"))])  # fmt: skip
        for g, label in (("mosnet", "daemon + proxy"), ("ovs", "OVS daemons")):
            s = img.get("groups", {}).get(g)
            if s:
                rows.append([f"= {label}", _mb(s.get("rss_kb")), _mb(s.get("pss_kb")),
                             _n(s.get("threads")), s.get("cpu_s_per_min"),
                             _n(s.get("wakeups_per_min"))])  # fmt: skip
        out += ["", f"{img.get('label')} ({img.get('image', {}).get('path')}), boot to the real "
                f"root {img.get('boot_s')} s",
                stats.table(["process", "RSS MB", "PSS MB", "threads", "CPU s/idle min",
                             "wake-ups/min"], rows)]  # fmt: skip
        for p in procs.values():
            detail = (p.get("threads_detail") or [[]])[0]
            if len(detail) > 1:
                parts = [f"{d['tid']}: {d['cpu_s_per_min']} s, {d.get('wakeups_per_min')} wake-ups"
                         for d in detail]  # fmt: skip
                out.append(f"  {p['label']} per thread (first boot, per min): " + "; ".join(parts))
        v = img.get("verdict", {})
        mos = img.get("groups", {}).get("mosnet", {})
        ratios = img.get("ratio_vs_udhcpc", {})
        if mos:
            rss, pss = _mb(mos.get("rss_kb")), _mb(mos.get("pss_kb"))
            out.append(
                f"daemon + proxy: RSS {rss} MB, PSS {pss} MB (target <= {TARGET_RSS_MB:g} MB: "
                f"RSS {'meets' if v.get('rss_sum_ok') else 'misses'}, PSS "
                f"{'meets' if v.get('pss_sum_ok') else 'misses'}); x udhcpc: RSS "
                f"{ratios.get('rss_kb')}, PSS {ratios.get('pss_kb')}"
            )
            est = img.get("mosnet_cpu_s_per_min_native_estimate")
            factor = img.get("tcg_factor")
            out.append(
                f"CPU {mos.get('cpu_s_per_min')} s per idle minute under TCG (target <= "
                f"{TARGET_CPU_S:g} s: {'meets' if v.get('cpu_tcg_ok') else 'misses'}); TCG runs "
                f"busybox {factor}x slower than the host, so natively ~{est} s"
            )
        if img.get("missing"):
            out.append(f"not found in some boot: {img['missing']}")
        if img.get("image_rebuilt_during_run"):
            out.append(f"the image was rebuilt between boots: {img['image_rebuilt_during_run']}")
    return "\n".join(out)


def panels(section: dict[str, Any]) -> list[pngchart.Panel]:
    bars = []
    for i, (key, img) in enumerate(section.get("images", {}).items()):
        procs = img.get("processes", {})
        for name in ("mosnet-daemon", "mosnet-proxy", "ovsdb-server", "ovs-vswitchd", "udhcpc"):
            p = procs.get(name)
            if p and p.get("rss_kb") is not None:
                bars.append(pngchart.Bar(f"{key} {name}", p["rss_kb"] / 1024,
                                         color=pngchart.PALETTE[i],
                                         note=f"PSS {_mb(p.get('pss_kb'))}"))  # fmt: skip
    if not bars:
        return []
    return [pngchart.Panel("Daemon RSS after switch_root (QEMU guest)", bars, unit="MB",
                           target=TARGET_RSS_MB, target_label=f"{TARGET_RSS_MB:g} MB",
                           digits=1)]  # fmt: skip


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
