"""Run Open vSwitch from PID 1 and build br-mosnet on it (issue 6 §1-2).

Everything lives under one run dir (default /run/openvswitch): the database,
its socket, pidfiles, control sockets, logs and the bridge's management socket
(``OVS_RUNDIR`` etc. point there, so no daemon touches /etc or /var).
The daemons get ``argv[0]`` starting with ``@``: systemd's switch-root and
shutdown kill sweeps spare such processes (docs/ROOT_STORAGE_DAEMONS.md).
Because OVS derives its program name from argv[0], every default path
(pidfile, unixctl socket, log) is passed explicitly.

Nothing here raises on a failing command: each step is bounded by a timeout
and failures come back as strings in a typed result (``restart``, for the
watcher, raises ``StartFailed``). The daemons run from the copy
``mosnet.ovs.ovsrt`` puts under /run, so they can be started again after
switch_root has emptied the initramfs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mosnet.base import children
from mosnet.base.errors import StartFailed
from mosnet.base.names import BRIDGE, bridge_mac
from mosnet.ovs import ovsrt
from mosnet.state import status

RUN_DIR = "/run/openvswitch"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")  # Debian: tools in bin, daemons in sbin
VSWITCHD_PATHS = ("/usr/lib/openvswitch-switch/ovs-vswitchd", "/usr/sbin/ovs-vswitchd")
Datapath = Literal["system", "netdev"]
TIMEOUT = 20.0
NIC_OFPORT, HOST_OFPORT = 1, 2  # mosnet.ovs.ofrules.NIC_PORT / HOST_PORT
DAEMONS = ("ovsdb-server", "ovs-vswitchd")  # start order


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


def _run(
    argv: Sequence[str],
    run_dir: str,
    timeout: float,
    *,
    stdin: str = "",
    runtime: ovsrt.Runtime | None = None,
) -> str | None:
    """Run a tool with a list argv; None on success, else a one-line error.

    With ``runtime`` holding the program, it runs from there (through the
    runtime's loader); else from the system's binaries.
    """
    title = argv[0].removeprefix("@")
    if runtime is not None and runtime.has(title):
        exe, args = runtime.command(argv)
    else:
        exe, args = find_binary(title) or title, list(argv)
    ran = children.run(args, timeout=timeout, stdin=stdin, env=_env(run_dir), executable=exe)
    if ran.failure is not None:
        return f"{title}: {ran.error}"
    if ran.returncode != 0:
        detail = ran.said.replace("\n", "; ")
        return f"{title} exited {ran.returncode}: {detail}"
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


def daemon_argv(name: str, run_dir: str) -> list[str]:
    """The command line of ``name`` (one of ``DAEMONS``): the same at every (re)start."""
    p = paths(run_dir)
    if name == "ovsdb-server":
        head = [p["db"], f"--remote=punix:{p['db_sock']}"]  # never a TCP remote
        key = "ovsdb"
    else:
        head, key = [f"unix:{p['db_sock']}"], "vswitchd"
    return [
        f"@{name}",
        *head,
        f"--pidfile={p[key + '_pid']}",
        f"--unixctl={p[key + '_ctl']}",
        f"--log-file={p[key + '_log']}",
        "--detach",  # returns once it serves (ovsdb) or has read the database (vswitchd)
        "--no-chdir",
    ]


def _start_ovsdb(
    run_dir: str, timeout: float, runtime: ovsrt.Runtime | None = None
) -> tuple[int | None, str | None]:
    p = paths(run_dir)
    if not os.path.exists(p["db"]):
        err = _run(["ovsdb-tool", "create", p["db"], SCHEMA], run_dir, timeout)
        if err:
            return None, err
    err = _run(daemon_argv("ovsdb-server", run_dir), run_dir, timeout, runtime=runtime)
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


def _install_runtime(root: str | None, manifest: str) -> tuple[ovsrt.Runtime | None, str]:
    """The /run copy of the daemons (``mosnet.ovs.ovsrt``), or None and why not."""
    if root is None:
        return None, ""
    try:
        rt = ovsrt.install(manifest, root)
    except ovsrt.OvsRuntimeError as exc:
        return None, f"{exc}: the daemons run from the initramfs, no restart after switch_root"
    return rt, "" if rt is not None else "no OVS runtime manifest: system binaries"


def start(
    run_dir: str = RUN_DIR,
    *,
    datapath: Datapath = "system",
    wait_uptime: float = 10.0,
    timeout: float = TIMEOUT,
    runtime_root: str | None = ovsrt.RUNTIME_DIR,
    manifest: str = ovsrt.MANIFEST,
) -> Result:
    """Create the database and start ovsdb-server and ovs-vswitchd, detached.

    They run from the runtime copy under ``runtime_root`` when the image
    carries a manifest (``None``: never copy).
    """
    if not available(datapath):
        return Result(errors=(f"Open vSwitch binaries, schema or {datapath} datapath not found",))
    try:
        os.makedirs(run_dir, mode=0o750, exist_ok=True)
    except OSError as exc:
        return Result(errors=(f"{run_dir}: {exc}",))
    runtime, why = _install_runtime(runtime_root, manifest)
    notes: tuple[str, ...] = (why,) if why else ()
    db_pid, err = _start_ovsdb(run_dir, timeout, runtime)
    if err:
        return Result(ovsdb_pid=db_pid, notes=notes, errors=(err,))
    if datapath == "system":
        note = _wait_uptime(wait_uptime)
        notes += (note,) if note else ()
    argv = daemon_argv("ovs-vswitchd", run_dir)
    err = _run(argv, run_dir, timeout, runtime=runtime)
    sw_pid = _read_pid(paths(run_dir)["vswitchd_pid"])
    return Result(db_pid, sw_pid, notes, (err,) if err else ())


def daemon_pid(name: str, run_dir: str = RUN_DIR) -> int | None:
    """The running ``name`` by its pidfile; None if it is not running (or the pid was reused)."""
    key = "ovsdb_pid" if name == "ovsdb-server" else "vswitchd_pid"
    pid = _read_pid(paths(run_dir)[key])
    if pid is None or not (status.alive(pid, f"@{name}") or status.alive(pid, name)):
        return None
    return pid


def restart(
    name: str,
    run_dir: str = RUN_DIR,
    *,
    runtime_root: str = ovsrt.RUNTIME_DIR,
    timeout: float = TIMEOUT,
) -> int:
    """Start ``name`` again with the arguments and database of the first start; its pid.

    For the watcher: raises StartFailed (it tries again later). A daemon that
    came up although the start command failed (a slow ``--detach``) counts.
    """
    if name == "ovs-vswitchd":
        _wait_uptime(10.0)  # the 3.1.0 handler bug bites a restart as much as a start
    err = _run(daemon_argv(name, run_dir), run_dir, timeout, runtime=ovsrt.find(runtime_root))
    pid = daemon_pid(name, run_dir)
    if pid is None:
        raise StartFailed(err or f"{name} started but is not running")
    return pid


def build_bridge(
    nic: str,
    port: str,
    mac: str,
    *,
    run_dir: str = RUN_DIR,
    datapath: Datapath = "system",
    timeout: float = TIMEOUT,
    mtu: int = 1500,
) -> Result:
    """br-mosnet with ``nic`` as uplink and internal ``port`` carrying ``mac`` (and ``mtu``).

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
        f"ofport_request={HOST_OFPORT}",  # mosnet.ovs.ofrules relies on both numbers
        *([f"mtu_request={mtu}"] if mtu != 1500 else []),
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
    return all(daemon_pid(name, run_dir) is not None for name in DAEMONS)


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
