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

usage: .venv/bin/python bench/native_boot.py [--runs N]   (as root)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import netlab, pngchart, stats  # noqa: E402

TOP = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
IMAGE = TOP / "out" / "mosnet-initramfs.img"
BUSYBOX = "/bin/busybox"
RUN_TIMEOUT = 60.0
TARGET_RATIO = 3.0
KEY = "native_boot"
# Global (not namespaced) settings PID 1 writes; put back after every run.
SYSCTLS = (
    "/proc/sys/kernel/ctrl-alt-del",
    "/proc/sys/kernel/printk_devkmsg",
    "/proc/sys/kernel/modprobe",
)
V4_NET, RA_NET = "10.231.0", "10.231.1"

# mosnet's log lines that end a phase, in boot order; a phase whose line is
# missing (a rollback, a changed message) is folded into the next one.
PHASES: tuple[tuple[str, str], ...] = (
    ("imports", r"mosnet-init starting as pid 1\b"),
    ("setup", r"drivers \.\.\."),
    ("modules", r"drivers done"),
    ("discovery", r"DHCP probe: DISCOVER on"),
    ("dhcp probe", r"DHCP probe: (chose|no )"),
    ("apply", r"plan applied"),
    ("dhcp request", r"dhcp4 \S+: REQUESTING -> BOUND"),
    ("arp probe", r"dhcp4 \S+: bound "),
    ("announce", r"\S+: gratuitous ARP"),
    ("ipv6 ra", r"\S+: IPv6 "),
    ("root", r"root done"),
    ("fork", r"daemon done"),
)
SWITCH_ROOT = "switch_root"  # the last phase: until the real init's own stamp
PHASE_NAMES = tuple(name for name, _ in PHASES) + (SWITCH_ROOT,)

BUSYBOX_INIT = """#!/bin/busybox sh
# The reference: the same job as mosnet-init with busybox alone.
export PATH=/bin
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
{drivers}ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /udhcpc.sh -n -t 10 -T 1 || echo "BN7 fail udhcpc"
{wait_root}mount {mount_opts}{root} /sysroot
for d in dev proc sys run; do mount --move /$d /sysroot/$d; done
exec switch_root /sysroot /sbin/init
"""
# A real machine (bench/qemu_boot.py): drivers from /lib/modules, in load
# order, then the root device may take a moment to appear (up to 5 s).
_INSMOD = "insmod /lib/modules/{name}.ko\n"
_WAIT_ROOT = "i=0; while [ ! -b {root} ] && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done\n"
UDHCPC_SCRIPT = """#!/bin/busybox sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface" ;;
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  for r in $router; do ip route add default via "$r" dev "$interface"; break; done
  : > /run/resolv.conf
  for d in $dns; do echo "nameserver $d" >> /run/resolv.conf; done ;;
esac
"""
BUSYBOX_APPLETS = ("sh", "mount", "ip", "udhcpc", "switch_root", "echo")
MODULE_APPLETS = ("insmod", "usleep")


def busybox_init(
    root: str, *, modules: Sequence[str] = (), rw: bool = False, fstype: str = ""
) -> str:
    """The reference's /init: mount, [insmod], udhcpc, mount the root, switch_root.

    ``modules`` (names, dependencies first) are loaded from ``/lib/modules``
    with ``insmod``; then the script waits for ``root`` to appear.
    """
    opts = f"-o {'rw' if rw else 'ro'} " + (f"-t {fstype} " if fstype else "")
    return BUSYBOX_INIT.format(
        root=root,
        drivers="".join(_INSMOD.format(name=m) for m in modules),
        wait_root=_WAIT_ROOT.format(root=root) if modules else "",
        mount_opts=opts,
    )


def busybox_applets(modules: bool = False) -> tuple[str, ...]:
    """The applet links the reference needs (``insmod`` etc. with modules)."""
    return BUSYBOX_APPLETS + (MODULE_APPLETS if modules else ())


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    stage: Path
    argv: tuple[str, ...]  # after ``/bn7-stamp exec``
    bridge: str
    net: str
    mac: str
    phases: bool  # parse mosnet's kmsg lines


@dataclass
class RunResult:
    ok: bool
    total_ms: float | None = None
    phases_ms: dict[str, float | None] | None = None
    error: str = ""


# ---------------------------------------------------------------- pure parts


def parse_kmsg(record: bytes) -> tuple[int, str] | None:
    """One /dev/kmsg record -> (timestamp in ns, message); None if not a record."""
    head, sep, rest = record.decode("utf-8", "replace").partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 3 or not fields[2].isdigit():
        return None
    return int(fields[2]) * 1000, rest.split("\n", 1)[0]


def mosnet_lines(records: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """mosnet's own lines, without the ``mosnet: `` prefix."""
    return [(t, m[len("mosnet: ") :]) for t, m in records if m.startswith("mosnet: ")]


def mosnet_phases(
    exec_ns: int, init_ns: int, lines: Sequence[tuple[int, str]]
) -> dict[str, float | None]:
    """Milliseconds per phase; ``lines`` carry times on the same clock as the stamps.

    Phases are consecutive: each ends at the first line matching its pattern
    after the previous phase's end, so the values add up to the total.
    """
    out: dict[str, float | None] = {}
    prev, i = exec_ns, 0
    for name, pattern in PHASES:
        rx = re.compile(pattern)
        hit = next((k for k in range(i, len(lines)) if rx.match(lines[k][1])), None)
        if hit is None or lines[hit][0] > init_ns:
            out[name] = None
            continue
        out[name] = (lines[hit][0] - prev) / 1e6
        prev, i = lines[hit][0], hit + 1
    out[SWITCH_ROOT] = (init_ns - prev) / 1e6
    return out


def parse_stamps(output: str) -> dict[str, int]:
    """``BN7 exec <ns>`` / ``BN7 init <ns>`` lines of the stamp program."""
    found: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "BN7" and parts[2].isdigit():
            found.setdefault(parts[1], int(parts[2]))
    return found


def summarize_variant(runs: Sequence[RunResult], with_phases: bool) -> dict[str, Any]:
    good = [r for r in runs if r.ok and r.total_ms is not None]
    out: dict[str, Any] = {
        "runs": len(runs),
        "failures": len(runs) - len(good),
        "errors": sorted({r.error for r in runs if r.error})[:5],
    }
    if not good:
        return out
    samples = [r.total_ms for r in good if r.total_ms is not None]
    out["total_ms"] = stats.summarize(samples).to_json()
    out["samples_ms"] = [round(s, 1) for s in samples]
    if with_phases:
        phases: dict[str, Any] = {}
        for name in PHASE_NAMES:
            vals = [v for r in good if r.phases_ms and (v := r.phases_ms.get(name)) is not None]
            phases[name] = stats.summarize(vals).to_json() if vals else None
        out["phases_ms"] = phases
    return out


# ------------------------------------------------------------ system helpers


def _run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)


class Kmsg:
    """Reads /dev/kmsg records written after ``mark`` and maps their clock."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)

    def mark(self) -> int:
        """Skip to the end; write a sync line; return its CLOCK_MONOTONIC (ns)."""
        os.lseek(self.fd, 0, os.SEEK_END)
        w = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            t0 = time.monotonic_ns()
            os.write(w, b"<7>bn7-bench: clock sync\n")
            t1 = time.monotonic_ns()
        finally:
            os.close(w)
        return (t0 + t1) // 2

    def read(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten meanwhile: go on
                    continue
                raise
            parsed = parse_kmsg(rec)
            if parsed is not None:
                out.append(parsed)

    def records_on_monotonic(self, sync_ns: int) -> list[tuple[int, str]]:
        """All records since ``mark``, their times moved onto CLOCK_MONOTONIC."""
        recs = self.read()
        sync = next((t for t, m in recs if m == "bn7-bench: clock sync"), None)
        offset = 0 if sync is None else sync - sync_ns
        return [(t - offset, m) for t, m in recs]

    def close(self) -> None:
        os.close(self.fd)


def _save_sysctls() -> dict[str, str]:
    saved = {}
    for path in SYSCTLS:
        with contextlib.suppress(OSError), open(path) as f:
            saved[path] = f.read()
    return saved


def _restore_sysctls(saved: dict[str, str]) -> list[str]:
    changed = []
    for path, value in saved.items():
        try:
            with open(path) as f:
                if f.read() == value:
                    continue
            with open(path, "w") as f:
                f.write(value)
            changed.append(os.path.basename(path))
        except OSError:
            continue
    return changed


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ------------------------------------------------------------------ the bench


class NativeBench:
    def __init__(
        self, workdir: Path, log: Callable[[str], None], keep_logs: Path | None = None
    ) -> None:
        self.work = workdir
        self.log = log
        self.keep_logs = keep_logs
        self.count = 0
        self.lab = netlab.Lab(workdir)
        self.tag = netlab.tag()
        self.srv = f"bn7-ns-{self.tag}"
        self.client = f"bn7-nc-{self.tag}"
        self.loop: str | None = None
        self.mountpoint = workdir / "root"
        self.kmsg: Kmsg | None = None
        self.sysctl_changes: set[str] = set()
        self.variants: list[Variant] = []
        self.cmdline = ""
        self.image_info: dict[str, Any] = {}

    # -- set-up
    def setup(self) -> None:
        tools = ("gcc", "zstd", "cpio", "mkfs.ext4", "losetup", "unshare", "nsenter", "chroot")
        for tool in (*tools, "ip", netlab.DNSMASQ, BUSYBOX):
            if shutil.which(tool) is None:
                raise RuntimeError(f"needs {tool}")
        if not IMAGE.exists():
            raise RuntimeError(f"{IMAGE} missing: run ./build.sh first")
        stamp = self.work / "bn7-stamp"
        preload = self.work / "bn7-cmdline.so"
        _run(["gcc", "-O2", "-static", "-o", str(stamp), str(HERE / "native" / "stamp.c")])
        _run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(preload),
              str(HERE / "native" / "cmdline_preload.c")])  # fmt: skip
        check = self.work / "bn7-check"
        _run(["gcc", "-O2", "-o", str(check), str(HERE / "native" / "cmdline_check.c")])
        self.loop = self._root_image(stamp)
        mosnet = self._mosnet_stage(stamp, preload)
        self._check_preload(mosnet, check)
        busybox = self._busybox_stage(stamp)
        self._network()
        self.mountpoint.mkdir()
        self.kmsg = Kmsg()
        self.variants = [
            Variant("busybox", "busybox + udhcpc (ref)", busybox, ("/init",),
                    "br0", V4_NET, "02:b7:00:00:00:01", False),
            Variant("mosnet", "mosnet-init, IPv4-only LAN", mosnet,
                    ("LD_PRELOAD=/bn7-cmdline.so", "BN7_CMDLINE=/etc/bn7-cmdline",
                     "/mosnet-init"), "br0", V4_NET, "02:b7:00:00:00:02", True),
            Variant("mosnet_ra", "mosnet-init, LAN with RAs", mosnet,
                    ("LD_PRELOAD=/bn7-cmdline.so", "BN7_CMDLINE=/etc/bn7-cmdline",
                     "/mosnet-init"), "br1", RA_NET, "02:b7:00:00:00:03", True),
        ]  # fmt: skip

    def _root_image(self, stamp: Path) -> str:
        """A 4 MiB ext4 whose /sbin/init is the stamp; attached read-only."""
        tree = self.work / "realroot"
        for d in ("sbin", "proc", "sys", "dev", "run", "etc", "tmp"):
            (tree / d).mkdir(parents=True)
        shutil.copy2(stamp, tree / "sbin" / "init")
        img = self.work / "realroot.img"
        _run(["mkfs.ext4", "-q", "-d", str(tree), "-L", "bn7root", str(img), "4M"])
        return _run(["losetup", "--find", "--show", "--read-only", str(img)]).stdout.strip()

    def _mosnet_stage(self, stamp: Path, preload: Path) -> Path:
        stage = self.work / "stage-mosnet"
        stage.mkdir()
        data = IMAGE.read_bytes()
        self.image_info = {
            "path": str(IMAGE.relative_to(TOP)),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()[:16],
            "mtime": time.strftime("%Y-%m-%d %H:%M", time.localtime(IMAGE.stat().st_mtime)),
        }
        raw = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
        subprocess.run(["cpio", "-idm", "--quiet"], input=raw, cwd=stage, check=True)
        shutil.copy2(stamp, stage / "bn7-stamp")
        shutil.copy2(preload, stage / "bn7-cmdline.so")
        self.cmdline = f"root={self.loop} ip=eth0:dhcp"
        (stage / "etc" / "bn7-cmdline").write_text(self.cmdline + "\n")
        return stage

    def _check_preload(self, stage: Path, check: Path) -> None:
        """Refuse to go on unless the image's own loader applies the shim.

        Without it mosnet-init would read the host's command line, and a
        root= there names the host's own root device.
        """
        shutil.copy2(check, stage / "bn7-check")
        try:
            out = subprocess.run(
                ["chroot", str(stage), "/bn7-stamp", "exec", "LD_PRELOAD=/bn7-cmdline.so",
                 "BN7_CMDLINE=/etc/bn7-cmdline", "/bn7-check"],
                capture_output=True, text=True, timeout=10,
            ).stdout  # fmt: skip
            got = "\n".join(ln for ln in out.splitlines() if not ln.startswith("BN7 "))
        finally:
            (stage / "bn7-check").unlink()
        if got != self.cmdline:
            raise RuntimeError(f"the /proc/cmdline shim does not work in the image: {got!r}")

    def _busybox_stage(self, stamp: Path) -> Path:
        stage = self.work / "stage-busybox"
        for d in ("bin", "proc", "sys", "dev", "run", "sysroot", "etc", "tmp"):
            (stage / d).mkdir(parents=True)
        shutil.copy2(BUSYBOX, stage / "bin" / "busybox")
        for applet in BUSYBOX_APPLETS:
            (stage / "bin" / applet).symlink_to("busybox")
        shutil.copy2(stamp, stage / "bn7-stamp")
        assert self.loop is not None
        for name, text in (("init", busybox_init(self.loop)),
                           ("udhcpc.sh", UDHCPC_SCRIPT)):  # fmt: skip
            (stage / name).write_text(text)
            (stage / name).chmod(0o755)
        return stage

    def _network(self) -> None:
        """Two LANs in one server namespace: br0 IPv4 only, br1 with RAs too."""
        lab, srv = self.lab, self.lab.netns(self.srv)
        for br, net in (("br0", V4_NET), ("br1", RA_NET)):
            netlab.ip("-n", srv, "link", "add", br, "type", "bridge", "stp_state", "0",
                      "forward_delay", "0")  # fmt: skip
            netlab.ip("-n", srv, "addr", "add", f"{net}.1/24", "dev", br)
            # A port that is always there keeps the bridge's carrier (and its
            # link-local address, the source of the RAs) up between runs.
            keep = f"b7{self.tag}{br[-1]}k"
            lab.veth(srv, keep + "a", srv, keep)
            netlab.ip("-n", srv, "link", "set", keep + "a", "up")
            netlab.ip("-n", srv, "link", "set", keep, "master", br)
            netlab.ip("-n", srv, "link", "set", br, "up")
        netlab.ip("-n", srv, "addr", "add", "fd00:231::1/64", "dev", "br1", "nodad")
        netlab.wait_dad(srv, "br1")
        lab.dnsmasq(srv, "br0", V4_NET, name="dnsmasq-v4")
        lab.dnsmasq(srv, "br1", RA_NET, ra=True, name="dnsmasq-ra")

    # -- one boot
    def run_once(self, v: Variant) -> RunResult:
        assert self.kmsg is not None
        peer = f"b7{self.tag}p"
        self.lab.netns(self.client)
        self.lab.veth(self.client, "eth0", self.srv, peer, a_mac=v.mac)
        netlab.ip("-n", self.srv, "link", "set", peer, "master", v.bridge)
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "bn7root", str(self.mountpoint)])
        saved = _save_sysctls()
        proc: subprocess.Popen[bytes] | None = None
        try:
            _run(["cp", "-a", f"{v.stage}/.", str(self.mountpoint)])
            sync_ns = self.kmsg.mark()
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.client}", "unshare", "--pid", "--mount",
                 "--uts", "--ipc", "--fork", "--kill-child", f"--root={self.mountpoint}",
                 "/bn7-stamp", "exec", *v.argv],
                env={"HOME": "/", "TERM": "linux"},
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            output = _read_until(proc, "BN7 init ", RUN_TIMEOUT)
            addrs = netlab.ip_out("-n", self.client, "-4", "-o", "addr", "show")
            self._kill_namespace(proc)
            records = self.kmsg.records_on_monotonic(sync_ns)
            self._keep(v, output, records)
            return self._result(v, output, addrs, records)
        finally:
            if proc is not None:
                self._kill_namespace(proc)
            self.sysctl_changes.update(_restore_sysctls(saved))
            with contextlib.suppress(subprocess.CalledProcessError):
                netlab.ip("-n", self.srv, "link", "del", peer)
            self.lab.del_netns(self.client)
            _umount(self.mountpoint)

    def _keep(self, v: Variant, output: str, records: list[tuple[int, str]]) -> None:
        """With --keep-logs: the console output and kmsg lines of every run."""
        self.count += 1
        if self.keep_logs is None:
            return
        self.keep_logs.mkdir(parents=True, exist_ok=True)
        lines = [output.rstrip(), ""] + [f"{t / 1e9:14.6f} {m}" for t, m in records]
        (self.keep_logs / f"{self.count:03d}-{v.key}.log").write_text("\n".join(lines) + "\n")

    def _result(
        self, v: Variant, output: str, addrs: str, records: list[tuple[int, str]]
    ) -> RunResult:
        stamps = parse_stamps(output)
        if "exec" not in stamps or "init" not in stamps:
            tail = " | ".join(output.strip().splitlines()[-3:])
            lines = [m for _, m in mosnet_lines(records)][-3:]
            return RunResult(False, error=f"real init not reached: {tail} {' | '.join(lines)}")
        if f"inet {v.net}." not in addrs:
            return RunResult(False, error="real init reached without an IPv4 lease")
        total = (stamps["init"] - stamps["exec"]) / 1e6
        phases = mosnet_phases(stamps["exec"], stamps["init"], mosnet_lines(records))
        return RunResult(True, total, phases if v.phases else None)

    def _kill_namespace(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the namespace's PID 1 (the kernel then ends all in it), by PID."""
        if proc.poll() is None:
            for pid in _children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    # -- tear-down
    def close(self) -> None:
        if self.kmsg is not None:
            self.kmsg.close()
        _umount(self.mountpoint)
        self.lab.close()
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)
            self.loop = None


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    end = time.monotonic() + timeout
    while marker.encode() not in buf:
        left = end - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace")


def _umount(path: Path) -> None:
    if os.path.ismount(path):
        r = subprocess.run(["umount", str(path)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def bench(log: Callable[[str], None], keep_logs: Path | None) -> Iterator[NativeBench]:
    work = Path(tempfile.mkdtemp(prefix="bn7-native-"))
    b = NativeBench(work, log, keep_logs)
    try:
        b.setup()
        yield b
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


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
    ref = _median(section, "busybox")
    section["ratios"] = {
        k: round(stats.ratio(m, ref), 2)
        for k in section["variants"]
        if k != "busybox" and ref is not None and (m := _median(section, k)) is not None
    }
    return section


def _brief(r: RunResult) -> str:
    return f"{r.total_ms:.0f} ms" if r.ok and r.total_ms is not None else r.error


def _median(section: dict[str, Any], key: str) -> float | None:
    total = section.get("variants", {}).get(key, {}).get("total_ms")
    return float(total["median"]) if total else None


# ------------------------------------------------------------------- report


def report(section: dict[str, Any]) -> str:
    variants: dict[str, Any] = section.get("variants", {})
    ratios: dict[str, float] = section.get("ratios", {})
    target = float(section.get("target_ratio", TARGET_RATIO))
    rows = []
    for key, v in variants.items():
        t = v.get("total_ms")
        if not t:
            rows.append([v.get("label", key), None, None, None, None, None, "failed", ""])
            continue
        r = ratios.get(key)
        rows.append([
            v.get("label", key), t["median"], t["p25"], t["p75"], t["min"], t["max"],
            "1 (ref)" if key == "busybox" else None if r is None else f"{r:.1f}",
            "" if r is None else f"<= {target:g}: {stats.verdict(r, target)}",
        ])  # fmt: skip
    out = [
        f"native boot: exec of the initramfs init -> exec of the real init, IPv4 lease up "
        f"({section.get('runs')} runs, ms)",
        stats.table(["", "median", "p25", "p75", "min", "max", "ratio", "target"], rows),
    ]
    phase_cols = [k for k, v in variants.items() if v.get("phases_ms")]
    if phase_cols:
        prow = []
        for name in PHASE_NAMES:
            cells: list[object] = [name]
            for k in phase_cols:
                p = variants[k]["phases_ms"].get(name)
                cells.append(None if p is None else p["median"])
            prow.append(cells)
        totals: list[object] = ["total"] + [variants[k]["total_ms"]["median"] for k in phase_cols]
        prow.append(totals)
        out += ["", "mosnet phases (median ms; each phase ends at a log line, so they add up)"]
        out.append(stats.table(["phase"] + [variants[k]["label"] for k in phase_cols], prow))
        worst = _slowest(variants[phase_cols[0]]["phases_ms"])
        if worst:
            out.append(f"slowest phase ({variants[phase_cols[0]]['label']}): {worst}")
    failures = {k: v["failures"] for k, v in variants.items() if v.get("failures")}
    if failures:
        errors = [e for v in variants.values() for e in v.get("errors", [])]
        out.append(f"failed runs: {failures}; first errors: {errors[:2]}")
    return "\n".join(out)


def _slowest(phases: dict[str, Any]) -> str:
    best = max(
        ((n, p["median"]) for n, p in phases.items() if p), key=lambda x: float(x[1]), default=None
    )
    return f"{best[0]} ({best[1]:.0f} ms)" if best else ""


def panels(section: dict[str, Any]) -> list[pngchart.Panel]:
    variants: dict[str, Any] = section.get("variants", {})
    bars = []
    for key, v in variants.items():
        t = v.get("total_ms")
        if t:
            r = section.get("ratios", {}).get(key)
            note = f"\u00d7{r:.1f}" if r is not None else "reference"
            label = v.get("label", key)
            bars.append(pngchart.Bar(label, t["median"], t["p25"], t["p75"], note=note))
    ref = _median(section, "busybox")
    target = float(section.get("target_ratio", TARGET_RATIO))
    out = [
        pngchart.Panel(
            "Native boot to the real init, median and IQR",
            bars,
            target=ref * target if ref else None,
            target_label=f"{target:g}x reference",
        )
    ]
    for key, v in variants.items():
        phases = v.get("phases_ms")
        if not phases:
            continue
        pbars = [
            pngchart.Bar(n, p["median"], p["p25"], p["p75"], color=pngchart.PALETTE[0])
            for n in PHASE_NAMES
            if (p := phases.get(n))
        ]
        out.append(pngchart.Panel(f"Phases: {v.get('label', key)}", pbars))
    return out


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
