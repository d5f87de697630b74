"""The ARP/NDP proxy as a supervised child process of the daemon (issue 6 §4).

The daemon forks ``@mosnet-proxy`` and forks it again when it dies (crash,
``kill``, a broken OpenFlow connection), with a backoff when it keeps dying
young (``mosnet.daemon.supervise.Backoff``). Being a fork of the daemon, it never
imports anything: after switch_root the initramfs files are gone. It dies
with the daemon (PR_SET_PDEATHSIG): the daemon's replacement starts its own,
and two proxies must never answer side by side.

* Linux bridge: announce the host addresses, then answer ARP/NDP on the NIC
  (``mosnet.proxy.proxyd``) for them and for the guest addresses the NDP relay
  (``mosnet.macnat.ndprelay``) learns; the relay also carries the guests' NS/NA out
  with the NIC MAC.
* Open vSwitch: announce, then be br-mosnet's OpenFlow controller
  (``mosnet.ovs.ofcontrol`` over ``mosnet.ovs.ofsock``); connecting restores the
  base flows. While the switch is away (ovs-vswitchd restarting) it waits
  for it instead of dying young again and again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mosnet.base import log, proctitle, wake
from mosnet.daemon.supervise import Backoff, die_with_parent
from mosnet.macnat import guests, ndprelay
from mosnet.ovs import ofcontrol, ofsock, vswitch
from mosnet.proxy import proxyd
from mosnet.proxy.answers import ProxyConfig

TITLE = "@mosnet-proxy"
GUEST_TIMEOUT = 300.0  # Linux bridge: a guest address unseen this long is forgotten
MAX_BACKOFF = 30.0
STABLE = 10.0  # a child that lived this long resets the backoff
SWITCH_RETRY = 0.5  # OVS: how often to knock while the switch's socket is not there

_log = log.get("proxyproc")


@dataclass(frozen=True)
class ProxySpec:
    ifname: str  # the uplink NIC: requests from the provider arrive there
    config: ProxyConfig
    backend: str = "linux"  # or "ovs"
    ovs_run_dir: str = vswitch.RUN_DIR


def _run_linux(spec: ProxySpec, stop: wake.Waker) -> None:
    reserved = guests.reserved_for(spec.config)
    # expiry is judged when an address is looked up: no timer needed
    table = guests.GuestTable(reserved, time.monotonic, timeout=GUEST_TIMEOUT)
    relay = ndprelay.Relay(spec.ifname, spec.config.nat_mac, table)
    threading.Thread(target=relay.run, args=(stop.is_set, stop.fileno()), daemon=True).start()
    proxyd.run(spec.ifname, spec.config, stop.is_set, guests=table, wake_fd=stop.fileno())


def _run_ovs(spec: ProxySpec, stop: wake.Waker) -> None:
    path = vswitch.paths(spec.ovs_run_dir)["controller"]
    controller = ofcontrol.Controller(spec.config, time.monotonic)
    waiting = False
    while not stop.is_set():
        try:
            ofsock.serve(path, controller, stop.is_set, wake_fd=stop.fileno())
            return
        except (FileNotFoundError, ConnectionRefusedError) as exc:  # only connect() says these
            if not waiting:
                _log.warning("OpenFlow switch at %s not there (%s); waiting for it", path, exc)
            waiting = True
            stop.wait(SWITCH_RETRY)


def child_main(spec: ProxySpec) -> int:
    """The proxy process; returns its exit status (non-zero: restart me)."""
    proctitle.set_title(TITLE)
    # the loops sleep on their sockets and this eventfd: SIGTERM wakes them at once
    stop = wake.Waker()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proxyd.announce_all(spec.ifname, spec.config)
    try:
        (_run_ovs if spec.backend == "ovs" else _run_linux)(spec, stop)
    except Exception as exc:  # noqa: BLE001 - logged, and the supervisor restarts us
        _log.error("proxy (%s) on %s failed: %s", spec.backend, spec.ifname, exc)
        return 1
    return 0


class Supervisor:
    """Keeps one proxy child alive until ``stop()``."""

    def __init__(self, spec: ProxySpec, fork: Callable[[], int] = os.fork) -> None:
        self.spec = spec
        self.fork = fork
        self.backoff = Backoff(maximum=MAX_BACKOFF, stable=STABLE)
        self.pid: int | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._renewing = threading.Event()

    def _spawn(self) -> int:
        parent = os.getpid()
        pid = self.fork()
        if pid == 0:
            code = 1
            try:
                die_with_parent(parent)
                code = child_main(self.spec)
            finally:
                os._exit(code)  # never return into the daemon's code
        self.pid = pid
        return pid

    def run(self) -> None:
        """Thread body: fork, wait, fork again."""
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                pid = self._spawn()
            except OSError as exc:  # EAGAIN, ENOMEM: try again later, never give up
                _log.error("cannot fork the proxy process: %s", exc)
                self._stopping.wait(MAX_BACKOFF)
                continue
            if self._stopping.is_set():  # stop() ran while we forked: it saw no pid
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            _log.info("proxy process %d started (%s on %s)", pid, self.spec.backend,
                      self.spec.ifname)  # fmt: skip
            status = _wait(pid)
            self.pid = None
            if self._stopping.is_set():
                return
            if self._renewing.is_set():
                self._renewing.clear()
                _log.info("proxy process %d replaced by one in the real root", pid)
                continue
            lived = time.monotonic() - started
            backoff = self.backoff.after(lived)
            self.restarts += 1
            _log.warning("proxy process %d ended (%s) after %.1f s; restarting in %.0f s",
                         pid, status, lived, backoff)  # fmt: skip
            self._stopping.wait(backoff)

    def renew(self) -> None:
        """Replace the child at once (no backoff): called when the daemon has
        entered the real root, so the new child resolves /sys and /run paths
        there, not in the initramfs that switch_root emptied."""
        pid = self.pid
        if pid is None:
            return
        self._renewing.set()
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            self._renewing.clear()  # already gone: its death is a real one

    def stop(self) -> None:
        self._stopping.set()
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)


def _wait(pid: int) -> str:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return "already reaped"
        except InterruptedError:
            continue
        if os.WIFSIGNALED(status):
            return f"signal {os.WTERMSIG(status)}"
        return f"exit status {os.waitstatus_to_exitcode(status)}"
