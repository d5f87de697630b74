"""Run Open vSwitch from PID 1 and build br-mosnet on it (issue 6 §1-2).

Everything lives under one run dir (default /run/openvswitch): the database,
its socket, pidfiles, control sockets, logs and the bridge's management socket
(``OVS_RUNDIR`` etc. point there, so no daemon touches /etc or /var).
The daemons get ``argv[0]`` starting with ``@``: systemd's switch-root and
shutdown kill sweeps spare such processes (docs/ROOT_STORAGE_DAEMONS.md).
Because OVS derives its program name from argv[0], every default path
(pidfile, unixctl socket, log) is passed explicitly.

Nothing here raises on a failing command: each step is bounded by a timeout
and failures come back as strings in a typed result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mosnet.bridge import BRIDGE, bridge_mac

RUN_DIR = "/run/openvswitch"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")  # Debian: tools in bin, daemons in sbin
VSWITCHD_PATHS = ("/usr/lib/openvswitch-switch/ovs-vswitchd", "/usr/sbin/ovs-vswitchd")
OPENFLOW_PORTS = (6633, 6653, 6640)  # OpenFlow (old and IANA) and OVSDB
Datapath = Literal["system", "netdev"]
TIMEOUT = 20.0
NIC_OFPORT, HOST_OFPORT = 1, 2  # mosnet.ofrules.NIC_PORT / HOST_PORT


@dataclass(frozen=True)
class Result:
    """What a step did: PIDs of started daemons, notes, and what went wrong."""

    ovsdb_pid: int | None = None
    vswitchd_pid: int | None = None
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def find_binary(name: str) -> str | None:
    """``name`` in the usual dirs; ovs-vswitchd where Debian puts the real binary."""
    found = VSWITCHD_PATHS if name == "ovs-vswitchd" else tuple(f"{d}/{name}" for d in BIN_DIRS)
    return next((p for p in found if os.access(p, os.X_OK)), None)


def available(datapath: str | None = None) -> bool:
    """The binaries, the schema and (kernel datapath) the openvswitch module."""
    names = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl")
    if not all(find_binary(n) for n in names) or not os.path.exists(SCHEMA):
        return False
    datapath = datapath or os.environ.get("MOSNET_OVS_DATAPATH", "system")
    return datapath == "netdev" or kernel_datapath()


def kernel_datapath(
    release: str | None = None, *, sysfs: str = "/sys", lib_modules: str = "/lib/modules"
) -> bool:
    """openvswitch.ko loaded, built in, or listed in this kernel's modules.dep."""
    if os.path.isdir(f"{sysfs}/module/openvswitch"):
        return True
    moddir = f"{lib_modules}/{release or os.uname().release}"
    for index in ("modules.dep", "modules.builtin"):
        try:
            text = Path(f"{moddir}/{index}").read_text(errors="replace")
        except OSError:
            continue
        if "/openvswitch.ko" in text:
            return True
    return False


def _env(run_dir: str) -> dict[str, str]:
    # Keep every OVS default path (mgmt sockets, logs, db) inside run_dir.
    names = ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR", "OVS_PKGDATADIR")
    env = {k: run_dir for k in names[:4]}
    env[names[4]] = os.path.dirname(SCHEMA)
    return dict(os.environ, **env)


def _run(argv: Sequence[str], run_dir: str, timeout: float, *, stdin: str = "") -> str | None:
    """Run a tool with a list argv; None on success, else a one-line error."""
    title = argv[0].removeprefix("@")
    exe = find_binary(title) or title
    try:
        proc = subprocess.run(
            [argv[0], *argv[1:]],
            executable=exe,
            input=stdin,
            env=_env(run_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{title}: {exc}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().replace("\n", "; ")
        return f"{title} exited {proc.returncode}: {detail}"
    return None


def _read_pid(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def paths(run_dir: str) -> dict[str, str]:
    """Every file the daemons use, by role."""
    return {
        "db": f"{run_dir}/conf.db",
        "db_sock": f"{run_dir}/db.sock",
        "ovsdb_pid": f"{run_dir}/ovsdb-server.pid",
        "ovsdb_ctl": f"{run_dir}/ovsdb-server.ctl",
        "ovsdb_log": f"{run_dir}/ovsdb-server.log",
        "vswitchd_pid": f"{run_dir}/ovs-vswitchd.pid",
        "vswitchd_ctl": f"{run_dir}/ovs-vswitchd.ctl",
        "vswitchd_log": f"{run_dir}/ovs-vswitchd.log",
        "mgmt": f"{run_dir}/{BRIDGE}.mgmt",  # what ovs-ofctl talks to
        # vswitchd only accepts punix: paths named <run_dir>/<bridge>.*
        "controller": f"{run_dir}/{BRIDGE}.controller",
    }


def vsctl(run_dir: str, *args: str, timeout: float = TIMEOUT) -> str | None:
    """``ovs-vsctl`` against our database; None on success."""
    db = f"--db=unix:{paths(run_dir)['db_sock']}"
    return _run(["ovs-vsctl", db, f"--timeout={int(timeout)}", *args], run_dir, timeout + 2)


def _start_ovsdb(run_dir: str, timeout: float) -> tuple[int | None, str | None]:
    p = paths(run_dir)
    if not os.path.exists(p["db"]):
        err = _run(["ovsdb-tool", "create", p["db"], SCHEMA], run_dir, timeout)
        if err:
            return None, err
    argv = [
        "@ovsdb-server",
        p["db"],
        f"--remote=punix:{p['db_sock']}",  # never a TCP remote
        f"--pidfile={p['ovsdb_pid']}",
        f"--unixctl={p['ovsdb_ctl']}",
        f"--log-file={p['ovsdb_log']}",
        "--detach",
        "--no-chdir",
    ]
    err = _run(argv, run_dir, timeout)  # --detach returns once it is serving
    if err:
        return None, err
    err = vsctl(run_dir, "--no-wait", "init", timeout=timeout)
    return _read_pid(p["ovsdb_pid"]), err


def _wait_uptime(seconds: float) -> str | None:
    # Debian's OVS 3.1.0 gives the kernel datapath 0 upcall handlers when
    # ovs-vswitchd starts before CLOCK_MONOTONIC reaches 10 s (fixed in 3.1.1).
    now = time.clock_gettime(time.CLOCK_MONOTONIC)
    if now >= seconds:
        return None
    time.sleep(seconds - now)  # bounded: at most `seconds`
    return f"waited {seconds - now:.1f} s for uptime {seconds:.0f} s (OVS 3.1.0 handler bug)"


def start(
    run_dir: str = RUN_DIR,
    *,
    datapath: Datapath = "system",
    wait_uptime: float = 10.0,
    timeout: float = TIMEOUT,
) -> Result:
    """Create the database and start ovsdb-server and ovs-vswitchd, detached."""
    if not available(datapath):
        return Result(errors=(f"Open vSwitch binaries, schema or {datapath} datapath not found",))
    try:
        os.makedirs(run_dir, mode=0o750, exist_ok=True)
    except OSError as exc:
        return Result(errors=(f"{run_dir}: {exc}",))
    db_pid, err = _start_ovsdb(run_dir, timeout)
    if err:
        return Result(ovsdb_pid=db_pid, errors=(err,))
    notes: tuple[str, ...] = ()
    if datapath == "system":
        note = _wait_uptime(wait_uptime)
        notes = (note,) if note else ()
    p = paths(run_dir)
    argv = [
        "@ovs-vswitchd",
        f"unix:{p['db_sock']}",
        f"--pidfile={p['vswitchd_pid']}",
        f"--unixctl={p['vswitchd_ctl']}",
        f"--log-file={p['vswitchd_log']}",
        "--detach",
        "--no-chdir",
    ]
    err = _run(argv, run_dir, timeout)
    sw_pid = _read_pid(p["vswitchd_pid"])
    return Result(db_pid, sw_pid, notes, (err,) if err else ())


def build_bridge(
    nic: str,
    port: str,
    mac: str,
    *,
    run_dir: str = RUN_DIR,
    datapath: Datapath = "system",
    timeout: float = TIMEOUT,
) -> Result:
    """br-mosnet with ``nic`` as uplink and internal ``port`` carrying ``mac``.

    One ovs-vsctl transaction, idempotent (``--may-exist``). ``fail_mode=secure``
    keeps our flows when no controller is connected (standalone would fall
    back to a MAC-learning switch and leak guest MACs). The controller target
    is a unix socket only: never a TCP listener.
    """
    ctl = paths(run_dir)["controller"]
    args = [
        *("--may-exist", "add-br", BRIDGE),
        *("--", "set", "bridge", BRIDGE, "fail_mode=secure", f"datapath_type={datapath}"),
        "protocols=OpenFlow10,OpenFlow13",  # 1.3 for our controller, 1.0 for ovs-ofctl
        f'other-config:hwaddr="{bridge_mac(mac)}"',  # never the NIC's MAC
        *("--", "--may-exist", "add-port", BRIDGE, nic),
        *("--", "set", "interface", nic, f"ofport_request={NIC_OFPORT}"),
        *("--", "--may-exist", "add-port", BRIDGE, port),
        *("--", "set", "interface", port, "type=internal", f'mac="{mac.lower()}"'),
        f"ofport_request={HOST_OFPORT}",  # mosnet.ofrules relies on both numbers
        *("--", "set-controller", BRIDGE, f"punix:{ctl}"),
        # a flood of unknown guest frames must not swamp the controller
        *("--", "set", "controller", BRIDGE, "controller_rate_limit=1000"),
        "controller_burst_limit=200",
        # a local unix socket: a dead proxy closes it, so no 5 s echo probes
        # (they woke the idle proxy 12 times a minute)
        "inactivity_probe=0",
    ]
    err = vsctl(run_dir, *args, timeout=timeout) or handler_bug(run_dir)
    return Result(errors=(err,) if err else ())


HANDLER_BUG = "Overriding n-handler-threads to 0"


def handler_bug(run_dir: str) -> str | None:
    """The 3.1.0 bug's mark in the vswitchd log, as an error; None if absent.

    With 0 upcall handlers the kernel datapath forwards nothing. ``start``
    waits for 10 s of uptime to avoid it; this check makes sure that a bridge
    which would silently drop everything is reported (and rolled back) instead.
    """
    try:
        text = Path(paths(run_dir)["vswitchd_log"]).read_text(errors="replace")
    except OSError:
        return None
    if HANDLER_BUG in text:
        return (
            "ovs-vswitchd has 0 upcall handlers (OVS 3.1.0 bug): the bridge would forward nothing"
        )
    return None


def remove_bridge(run_dir: str = RUN_DIR, *, timeout: float = TIMEOUT) -> Result:
    """Delete br-mosnet (the NIC is released, the internal port vanishes)."""
    err = vsctl(run_dir, "--if-exists", "del-br", BRIDGE, timeout=timeout)
    return Result(errors=(err,) if err else ())


def replace_flows(flows: str, run_dir: str = RUN_DIR, *, timeout: float = TIMEOUT) -> Result:
    """Make br-mosnet's flow table exactly ``flows`` (``ovs-ofctl`` text; tests, repairs)."""
    target = f"unix:{paths(run_dir)['mgmt']}"
    argv = ["ovs-ofctl", f"--timeout={int(timeout)}", "replace-flows", target, "-"]
    err = _run(argv, run_dir, timeout + 2, stdin=flows)
    return Result(errors=(err,) if err else ())


def running(run_dir: str = RUN_DIR) -> bool:
    """Both daemons alive by their pidfiles (PID 1 may run the network phase twice)."""
    p = paths(run_dir)
    pids = [_read_pid(p["ovsdb_pid"]), _read_pid(p["vswitchd_pid"])]
    return all(pid is not None and _alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours to signal
    return True


def _stop_one(run_dir: str, ctl: str, pidfile: str, timeout: float) -> str | None:
    pid = _read_pid(pidfile)
    if pid is None:
        return None
    if _run(["ovs-appctl", "-t", ctl, "exit"], run_dir, timeout) is None:
        if _wait_gone(pid, timeout):
            return None
    try:
        os.kill(pid, signal.SIGTERM)  # by pidfile, never by name
    except ProcessLookupError:
        return None
    except OSError as exc:
        return f"kill {pid}: {exc}"
    return None if _wait_gone(pid, timeout) else f"pid {pid} did not exit"


def _wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        time.sleep(0.05)
    return False


def stop(run_dir: str = RUN_DIR, *, timeout: float = 5.0) -> Result:
    """Stop ovs-vswitchd, then ovsdb-server (``ovs-appctl exit``, else SIGTERM)."""
    p = paths(run_dir)
    errs = [
        _stop_one(run_dir, p["vswitchd_ctl"], p["vswitchd_pid"], timeout),
        _stop_one(run_dir, p["ovsdb_ctl"], p["ovsdb_pid"], timeout),
    ]
    return Result(errors=tuple(e for e in errs if e))


def _hex_addr(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:  # /proc/net/tcp: one little-endian 32-bit word
        return ".".join(str(b) for b in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # four LE words
    return bytes(b for w in words for b in w).hex(":", 2)


def tcp_listeners(ports: Sequence[int] = OPENFLOW_PORTS, proc: str = "/proc") -> list[str]:
    """``addr:port`` of every TCP listener on ``ports`` in this netns."""
    found = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"{proc}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: TCP_LISTEN
                continue
            addr, _, port = fields[1].partition(":")
            if int(port, 16) in ports:
                found.append(f"{_hex_addr(addr)}:{int(port, 16)}")
    return found


def listeners_ok(proc: str = "/proc") -> bool:
    """True when nothing listens on an OpenFlow/OVSDB TCP port (unix sockets only)."""
    return not tcp_listeners(OPENFLOW_PORTS, proc)
