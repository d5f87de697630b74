"""The long-running mosnet daemon, ``@mosnet-daemon``, forked from PID 1 before switch_root.

It keeps the DHCP lease alive for the life of the system, runs IPv6 (RA,
DHCPv6) and supervises the ARP/NDP proxy process (``mosnet.daemon.proxyproc``).
It and its watcher ``@mosnet-watch`` (``mosnet.daemon.watch``) keep each other
alive: a daemon that dies is replaced within seconds by one that takes the
lease over from ``lease-<if>.json`` (``mosnet.daemon.leasekeeper``), and a dead
watcher is replaced by the daemon. Every one of them is a fork of a process
that has already imported all it needs: after switch_root the initramfs
files are gone, so nothing here imports lazily. The names start with ``@``
so systemd's kill sweeps spare them, and each process follows PID 1 into
the real root on its own (``mosnet.daemon.rootfollow``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from mosnet.base import log, proctitle, wake
from mosnet.base.errors import StartFailed
from mosnet.daemon import failover, leasekeeper, watch
from mosnet.daemon.leasekeeper import LeaseKeeper
from mosnet.daemon.proxyproc import ProxySpec, Supervisor
from mosnet.daemon.rootfollow import Follower
from mosnet.daemon.supervise import POLL_IN, Slot, Watch, pidfds_work, stop_on_sigterm
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.ipv6 import autoconf
from mosnet.l2 import linkevents
from mosnet.ovs import ovsrt
from mosnet.proxy import proxyd
from mosnet.state import coexist, statefile
from mosnet.state.resolvconf import ResolvConf

TITLE = "@mosnet-daemon"
RUN_DIR = "/run/mosnet"
SWITCHED = b"S"
CHAINED = b"C"  # chain mode: PID 1 execs the distro's /init next

_log = log.get("daemon")


@dataclass(frozen=True)
class DaemonHandle:
    pid: int
    notify_fd: int  # write SWITCHED here once the real root is in place
    chain: bool = False  # the daemon follows a distro init (mosnet.daemon.chainfollow)

    def announce_switch(self) -> None:
        """Called by PID 1 right before it execs the real (or the distro's) init."""
        with contextlib.suppress(OSError):
            os.write(self.notify_fd, CHAINED if self.chain else SWITCHED)
            os.close(self.notify_fd)


@dataclass(frozen=True)
class DaemonSpec:
    """All a daemon needs to start again from the recorded state."""

    run_dir: str = RUN_DIR
    dhcp4: str | None = None  # the interface whose DHCPv4 lease is kept
    client_config: ClientConfig = ClientConfig()
    v6: str | None = None  # the interface of IPv6 (RA, DHCPv6)
    want_dhcp6: bool = False  # ip=dhcp6: DHCPv6 without waiting for the RA's M flag
    proxy: ProxySpec | None = None
    ovs_run_dir: str | None = None  # OVS backend: the watcher keeps its daemons alive
    ovs_runtime: str = ovsrt.RUNTIME_DIR
    chain: bool = False


@dataclass
class Start:
    """What one daemon process starts from."""

    spec: DaemonSpec
    follower: Follower
    watch_pid: int | None = None  # the watcher that forked us; None: fork one
    client: Client | None = None  # PID 1's client, still open (the first daemon only)
    v6: autoconf.Ipv6State | None = None  # PID 1's IPv6 state (idem)
    resolv: ResolvConf | None = None  # what PID 1 knew of DNS (idem)


class Network(Protocol):
    """What the network phase hands over (``mosnet.netphase.outcome.Outcome``)."""

    @property
    def client(self) -> Client | None: ...
    @property
    def v6(self) -> autoconf.Ipv6State | None: ...
    @property
    def proxy(self) -> ProxySpec | None: ...
    @property
    def resolv(self) -> ResolvConf: ...


@dataclass(frozen=True)
class Duties:
    """A network hand-over built by hand (tests, ``mosnet`` tools): only what is given."""

    client: Client | None = None
    v6: autoconf.Ipv6State | None = None
    proxy: ProxySpec | None = None
    resolv: ResolvConf = dataclasses.field(default_factory=lambda: ResolvConf([]))


def _exit_with(main: Callable[[Any], int | None], arg: object, what: str) -> NoReturn:
    """The body of a forked child: never falls back into the parent's code."""
    code = 1
    try:
        code = main(arg) or 0
    except BaseException:
        _log.exception("%s crashed", what)
        code = 1
    finally:
        os._exit(code)


def fork_daemon(spec: DaemonSpec, follower: Follower) -> int:
    """In the watcher: a new daemon, which takes the lease over from the record."""
    watcher = os.getpid()
    pid = os.fork()
    if pid == 0:
        _exit_with(_daemon_main, Start(spec, follower, watch_pid=watcher), "daemon")
    return pid


def follow(
    follower: Follower, run_dir: str, chain: bool, stop_fd: int, entered: Callable[[], None]
) -> bool:
    """Thread body: follow PID 1 into the real root, then call ``entered``.

    Chain mode records how it went (state.json ``chain``) and, once in the
    real root, keeps its network managers off mosnet's links.
    """
    done = follower.run(stop_fd)
    if chain and follower.done:
        section = {"followed": done, "events": follower.state.events}
        try:
            statefile.set_section(run_dir, "chain", section)
        except OSError as exc:
            _log.warning("state.json not updated: %s", exc)
        if done:
            try:
                written = coexist.hand_off_from_state(run_dir)
                _log.info("network managers kept off mosnet's links: %s", ", ".join(written))
            except (OSError, statefile.StateError) as exc:
                _log.warning("network manager files not written: %s", exc)
    if done:
        entered()
    return done


class _Daemon:
    """One daemon process: its lease, proxy, IPv6, root and watcher."""

    def __init__(self, start: Start, stop: wake.Waker) -> None:
        self.start, self.spec, self.stop = start, start.spec, stop
        self.client, self.v6 = start.client, start.v6
        # One resolv.conf owner for the lease and IPv6, written where the system reads it.
        known = start.resolv or ResolvConf([])
        self.resolv = known.retarget(leasekeeper.resolv_targets(start.spec.run_dir))
        if self.v6 is not None:
            self.v6.resolv = self.resolv
        self.keeper: LeaseKeeper | None = None
        self.supervisor: Supervisor | None = None
        self.watcher = Slot(watch.TITLE, self._fork_watch)
        self.watch = Watch([self.watcher], stopping=stop.is_set)
        self.replacement = start.watch_pid is not None  # forked by a watcher, not by PID 1

    def close_in_child(self) -> None:
        """In a watcher we just forked: our sockets are not its business."""
        if self.client is not None:
            self.client.close()
        if self.v6 is not None:
            autoconf.stop(self.v6)

    def _fork_watch(self) -> int:
        if self.stop.is_set():
            raise StartFailed("stopping")
        spec = self.spec
        ws = watch.WatchStart(
            spec.run_dir, os.getpid(), functools.partial(fork_daemon, spec, self.start.follower),
            self.start.follower, spec.ovs_run_dir, spec.ovs_runtime, self.close_in_child,
        )  # fmt: skip
        pid = os.fork()
        if pid == 0:
            _exit_with(watch.main, ws, "watcher")
        return pid

    def _watch_loop(self) -> None:
        while not self.stop.is_set():
            self.watch.step({self.stop.fileno(): POLL_IN})

    def _take_over(self) -> None:
        """A replacement daemon: the client from the recorded lease, IPv6 anew."""
        spec = self.spec
        if spec.dhcp4 is not None:
            client = self.client = Client(spec.dhcp4, config=spec.client_config)
            lease = leasekeeper.recorded_lease(spec.run_dir, spec.dhcp4, client.clock())
            if lease is None:
                _log.info("no usable lease recorded for %s: asking for one", spec.dhcp4)
            else:
                client.resume(lease)
        if spec.v6 is not None:
            self.v6 = autoconf.Ipv6State(spec.v6, spec.run_dir, resolv=self.resolv, deferred=True)

    def _run_ipv6(self) -> None:
        v6 = self.v6
        assert v6 is not None
        if self.replacement and self.spec.want_dhcp6:  # ip=dhcp6: as PID 1 did
            fresh = autoconf.start(v6.ifname, v6.run_dir, want_dhcp6=True, resolv=v6.resolv)
            for f in dataclasses.fields(fresh):
                setattr(v6, f.name, getattr(fresh, f.name))
        autoconf.run_forever(v6, self.stop.is_set)

    def _entered(self) -> None:
        _log.info("daemon now runs in the real root")
        self._record()  # after PID 1's state.json: the pid it wrote may be an older daemon's
        if self.supervisor is not None:
            self.supervisor.renew()
        if self.keeper is not None:
            self.keeper.republish()  # the real root's /etc/resolv.conf

    def _record(self) -> None:
        section = {"pid": os.getpid(), "started": round(time.time(), 3)}
        try:
            statefile.set_section(self.spec.run_dir, "daemon", section)
        except OSError as exc:
            _log.warning("state.json not updated: %s", exc)

    def _thread(self, target: Callable[..., object], *args: object) -> None:
        """A thread whose uncaught exception ends the daemon (the watcher starts a
        whole new one) instead of leaving it without that duty."""

        def body() -> None:
            try:
                target(*args)
            except BaseException:
                _log.exception("daemon thread %s crashed", getattr(target, "__name__", target))
                os._exit(1)

        threading.Thread(target=body, daemon=True).start()

    def _start_threads(self) -> None:
        spec, follower = self.spec, self.start.follower
        if self.watcher.pid is not None or self.watcher.due is not None:
            self._thread(self._watch_loop)
        if spec.proxy is not None:
            self.supervisor = Supervisor(spec.proxy)
            self._thread(self.supervisor.run)
            if linkevents.bonds_below(spec.proxy.ifname):
                p = spec.proxy
                again = functools.partial(proxyd.announce_all, p.ifname, p.config)
                self._thread(failover.run, p.ifname, again, self.stop.is_set, self.stop.fileno())
        if not follower.done:
            stop_fd = self.stop.fileno()
            self._thread(follow, follower, spec.run_dir, spec.chain, stop_fd, self._entered)
        v6 = self.v6
        if v6 is not None and (v6.client is not None or v6.deferred):
            self._thread(self._run_ipv6)

    def run(self) -> None:
        if self.replacement:
            self.watch.adopt(self.watcher, self.start.watch_pid)
            self._take_over()
        elif pidfds_work():  # the first daemon: fork the watcher while single-threaded
            self.watch.adopt(self.watcher, None)
            self.watch.step({}, 0.0)
        else:
            _log.error("no pidfds in this kernel: the daemon runs without a watcher")
        client = self.client
        if client is not None:
            self.keeper = LeaseKeeper(client, self.spec.run_dir, self.resolv)
            if self.replacement and client.lease is not None:
                self.keeper.on_resume(client.lease)
        self._start_threads()
        self._record()
        _log.info("daemon started (pid %d, watcher %s)", os.getpid(), self.watcher.pid)
        if client is not None and self.keeper is not None:
            keeper = self.keeper
            client.run_forever(keeper.on_bind, keeper.on_expire, self.stop.is_set,
                               on_renew=keeper.on_renew, wake_fd=self.stop.fileno())  # fmt: skip
        while not self.stop.wait():  # a signal handler runs between polls (PEP 475)
            pass
        self._shutdown()

    def _shutdown(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        fd = self.watcher.fd
        if fd is not None:  # a stop is a stop: the watcher must not start us again
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
        _log.info("daemon stopping on SIGTERM; addresses stay until their lifetimes end")


def _daemon_main(start: Start) -> None:
    # What PID 1 imported is never garbage: keep the collector off those pages, so
    # they stay shared with the watcher and the proxy (copy-on-write)
    gc.freeze()
    proctitle.set_title(TITLE)
    with contextlib.suppress(OSError):
        os.setsid()
    stop = wake.Waker()
    stop_on_sigterm(stop)
    start.follower.reopen()
    _Daemon(start, stop).run()


def spec_for(
    client: Client | None,
    v6: autoconf.Ipv6State | None,
    proxy: ProxySpec | None,
    **kw: Any,
) -> DaemonSpec:
    """What a replacement daemon needs to know of PID 1's live objects."""
    keep_v6 = v6 is not None and (v6.client is not None or v6.deferred)
    return DaemonSpec(
        dhcp4=client.ifname if client is not None else None,
        client_config=client.config if client is not None else ClientConfig(),
        v6=v6.ifname if v6 is not None and keep_v6 else None,
        want_dhcp6=v6 is not None and keep_v6 and not v6.deferred,
        proxy=proxy,
        ovs_run_dir=proxy.ovs_run_dir if proxy is not None and proxy.backend == "ovs" else None,
        **kw,
    )


def spawn(
    net: Network | None = None,
    *,
    chain: bool = False,
    run_dir: str = RUN_DIR,
    ovs_runtime: str = ovsrt.RUNTIME_DIR,
) -> DaemonHandle:
    """Fork the daemon (which forks its watcher); the parent gets a handle.

    The daemon takes over the network phase's client and IPv6 state whole
    (their sockets are closed here). ``chain``: PID 1 will exec a distro
    init, which mounts the root itself; /run/mosnet is opened here, before
    that init can mount over /run.
    """
    net = net if net is not None else Duties()
    client, v6 = net.client, net.v6
    spec = spec_for(client, v6, net.proxy, chain=chain, run_dir=run_dir, ovs_runtime=ovs_runtime)
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    run_fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(write_fd)
        follower = Follower(read_fd, run_fd, chain)
        start = Start(spec, follower, client=client, v6=v6, resolv=net.resolv)
        _exit_with(_daemon_main, start, "daemon")
    os.close(read_fd)
    os.close(run_fd)
    if client is not None:
        client.close()  # the daemon owns the sockets now
    if v6 is not None:
        autoconf.stop(v6)
    _log.info("forked daemon pid %d", pid)
    return DaemonHandle(pid, write_fd, chain)
