"""Daemon footprint, the guest: one boot of an image, the shell commands typed into it.

The guest prints an ``FP`` line per measured process at t0 and after the idle
minute, an ``FPT`` line per thread, and ``FPCAL`` after the calibration loop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.footprint.figures import idle_figures, parse_samples, parse_threads, stat_ticks
from qemu.topology import Gateway
from qemu.vm import OUT, Vm, VmSpec

WAIT_S = 75  # mostest.wait: the daemon settles before the shell opens
IDLE_S = 60
BOOT_TIMEOUT = 300.0  # TCG boot to "ROOT: done" (+ WAIT_S)
CAL_LOOPS = 200_000  # busybox sh loop for the TCG calibration
BUSYBOX = "/bin/busybox"
NET = "10.213.7"

IMAGES: dict[str, tuple[str, Path, str]] = {
    # key: (label, initrd, extra kernel arguments)
    "linux": ("Linux bridge", OUT / "mosnet-initramfs.img", ""),
    "ovs": ("Open vSwitch", OUT / "mosnet-initramfs-ovs.img", "mosbridge=ovs"),
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
CAL_LINE = re.compile(r"^FPCAL (\d+ \(.*\) .*)$", re.MULTILINE)


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
    text, booted = _boot_and_measure(spec, gw, console, keep)
    figs = idle_figures(parse_samples(text), parse_threads(text))
    cal = CAL_LINE.search(text.replace("\r", ""))
    out: dict[str, Any] = {
        "image_mtime": image_info(initrd)["mtime"],  # out/ may be rebuilt between boots
        "boot_s": round(booted, 1),
        "processes": figs,
        "guest_cal_ticks": stat_ticks(cal.group(1)) if cal else None,
    }
    missing = [
        p for p in ("mosnet-daemon", "mosnet-proxy", "mosnet-watch", "udhcpc") if p not in figs
    ]
    if image == "ovs":
        missing += [p for p in ("ovsdb-server", "ovs-vswitchd") if p not in figs]
    if missing:
        out["missing"] = missing
    log(f"  {label} boot {n}: {_brief(out)}")
    return out


def _boot_and_measure(
    spec: VmSpec, gw: Gateway, console: Path, keep: Path | None
) -> tuple[str, float]:
    """Boot, type the measurement into the shell; the console text and the boot time (s)."""
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
    return text, booted


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


def image_info(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.relative_to(OUT.parent)), "bytes": st.st_size,
            "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime))}  # fmt: skip
