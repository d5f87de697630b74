"""Native boot, the lab: the images staged, the namespaces, one boot as PID 1.

``NativeBench`` builds the stamp program and the /proc/cmdline shim, a
read-only ext4 root on a loop device, the staged trees of mosnet and of the
busybox reference, and two LANs (IPv4 only, and with RAs) in a server
namespace; ``run_once`` boots one variant in fresh namespaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import netlab
from bench.common.busybox_ref import BUSYBOX, BUSYBOX_APPLETS, UDHCPC_SCRIPT, busybox_init
from bench.native.host import (
    Kmsg,
    children,
    read_until,
    restore_sysctls,
    run_checked,
    save_sysctls,
    umount,
)
from bench.native.phases import RunResult, mosnet_lines, mosnet_phases, parse_stamps

TOP = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = TOP / "out" / "mosnet-initramfs.img"
RUN_TIMEOUT = 60.0
V4_NET, RA_NET = "10.231.0", "10.231.1"
ACD_MS = 1000  # udhcpc -a: the same 1 s ARP check as mosnet's probe_wait


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
        run_checked(["gcc", "-O2", "-static", "-o", str(stamp), str(HERE / "stamp.c")])
        run_checked(["gcc", "-O2", "-shared", "-fPIC", "-o", str(preload),
              str(HERE / "cmdline_preload.c")])  # fmt: skip
        check = self.work / "bn7-check"
        run_checked(["gcc", "-O2", "-o", str(check), str(HERE / "cmdline_check.c")])
        self.loop = self._root_image(stamp)
        mosnet = self._mosnet_stage(stamp, preload)
        self._check_preload(mosnet, check)
        busybox = self._busybox_stage(stamp, "stage-busybox", 0)
        busybox_acd = self._busybox_stage(stamp, "stage-busybox-acd", ACD_MS)
        self._network()
        self.mountpoint.mkdir()
        self.kmsg = Kmsg()
        self.variants = [
            Variant("busybox", "busybox + udhcpc (ref)", busybox, ("/init",),
                    "br0", V4_NET, "02:b7:00:00:00:01", False),
            Variant("busybox_acd", "busybox + udhcpc -a1000 (ref, ARP check)", busybox_acd,
                    ("/init",), "br0", V4_NET, "02:b7:00:00:00:04", False),
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
        run_checked(["mkfs.ext4", "-q", "-d", str(tree), "-L", "bn7root", str(img), "4M"])
        return run_checked(["losetup", "--find", "--show", "--read-only", str(img)]).stdout.strip()

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

    def _busybox_stage(self, stamp: Path, name: str, arp_ms: int) -> Path:
        stage = self.work / name
        for d in ("bin", "proc", "sys", "dev", "run", "sysroot", "etc", "tmp"):
            (stage / d).mkdir(parents=True)
        shutil.copy2(BUSYBOX, stage / "bin" / "busybox")
        for applet in BUSYBOX_APPLETS:
            (stage / "bin" / applet).symlink_to("busybox")
        shutil.copy2(stamp, stage / "bn7-stamp")
        assert self.loop is not None
        for file, text in (("init", busybox_init(self.loop, arp_ms=arp_ms)),
                           ("udhcpc.sh", UDHCPC_SCRIPT)):  # fmt: skip
            (stage / file).write_text(text)
            (stage / file).chmod(0o755)
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
        run_checked(["mount", "-t", "tmpfs", "-o", "mode=0755", "bn7root", str(self.mountpoint)])
        saved = save_sysctls()
        proc: subprocess.Popen[bytes] | None = None
        try:
            run_checked(["cp", "-a", f"{v.stage}/.", str(self.mountpoint)])
            sync_ns = self.kmsg.mark()
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.client}", "unshare", "--pid", "--mount",
                 "--uts", "--ipc", "--fork", "--kill-child", f"--root={self.mountpoint}",
                 "/bn7-stamp", "exec", *v.argv],
                env={"HOME": "/", "TERM": "linux"},
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            output = read_until(proc, "BN7 init ", RUN_TIMEOUT)
            addrs = netlab.ip_out("-n", self.client, "-4", "-o", "addr", "show")
            self._kill_namespace(proc)
            records = self.kmsg.records_on_monotonic(sync_ns)
            self._keep(v, output, records)
            return self._result(v, output, addrs, records)
        finally:
            if proc is not None:
                self._kill_namespace(proc)
            self.sysctl_changes.update(restore_sysctls(saved))
            with contextlib.suppress(subprocess.CalledProcessError):
                netlab.ip("-n", self.srv, "link", "del", peer)
            self.lab.del_netns(self.client)
            umount(self.mountpoint)

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
            for pid in children(proc.pid):
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
        umount(self.mountpoint)
        self.lab.close()
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)
            self.loop = None


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
