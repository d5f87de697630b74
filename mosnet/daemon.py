"""The long-running mosnet daemon, forked from PID 1 before switch_root.

It keeps the DHCP lease alive for the life of the system and supervises
the ARP/NDP proxy process (``mosnet.proxyproc``). Being a fork of PID 1, it
has already imported all it needs: after switch_root the initramfs files are gone, so it must never
import lazily. It names itself ``@mosnet-daemon`` so systemd's kill sweeps
spare it, and it moves its root into the real system once PID 1 says the
switch happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mosnet import chainfollow, coexist, ipv6, log, proctitle, resolvconf, state, wake
from mosnet.dhcp4 import apply
from mosnet.dhcp4.client import Client
from mosnet.dhcp4.lease import Lease
from mosnet.proxyproc import ProxySpec, Supervisor

TITLE = "@mosnet-daemon"
RUN_DIR = "/run/mosnet"
SWITCHED = b"S"
CHAINED = b"C"  # chain mode: PID 1 execs the distro's /init next

_log = log.get("daemon")


@dataclass(frozen=True)
class DaemonHandle:
    pid: int
    notify_fd: int  # write SWITCHED here once the real root is in place
    chain: bool = False  # the daemon follows a distro init (mosnet.chainfollow)

    def announce_switch(self) -> None:
        """Called by PID 1 right before it execs the real (or the distro's) init."""
        with contextlib.suppress(OSError):
            os.write(self.notify_fd, CHAINED if self.chain else SWITCHED)
            os.close(self.notify_fd)


def publish_dns(lease: Lease, run_dir: str = RUN_DIR, v6: ipv6.Ipv6State | None = None) -> None:
    """resolv.conf from the lease (and IPv6's RDNSS/DHCPv6 servers, merged).

    Written to /run/mosnet/resolv.conf and /etc/resolv.conf.
    """
    v6_dns = v6.dns if v6 is not None else ()
    if not lease.dns and not v6_dns:
        return
    servers = resolvconf.merge_nameservers(lease.dns, v6_dns)
    search = resolvconf.merge_search(lease.search or (), v6.search if v6 is not None else ())
    try:
        text = resolvconf.render(servers, search, f"mosnet DHCPv4 lease from {lease.server_id}")
    except resolvconf.ResolvConfError as exc:
        _log.warning("resolv.conf not written: %s", exc)
        return
    for path in (os.path.join(run_dir, "resolv.conf"), "/etc/resolv.conf"):
        try:
            resolvconf.write_atomic(path, text)
        except OSError as exc:  # a read-only real root: /run/mosnet still has it
            _log.warning("cannot write %s: %s", path, exc.strerror or exc)


class LeaseKeeper:
    """Applies every (re)bind to the interface and publishes it; undoes expiry."""

    def __init__(
        self, client: Client, run_dir: str = RUN_DIR, v6: ipv6.Ipv6State | None = None
    ) -> None:
        self.client = client
        self.run_dir = run_dir
        self.v6 = v6
        self.renewals = 0

    def _record(self, lease: Lease | None) -> None:
        """The lease section of state.json (``mosnet status`` shows the timers)."""
        ifname = self.client.ifname
        section = None if lease is None else state.lease_section(lease, ifname, self.client.clock())
        try:
            state.set_section(self.run_dir, "lease", section)
        except OSError as exc:
            _log.warning("state.json not updated: %s", exc)

    def _publish(self, lease: Lease) -> None:
        self._record(lease)
        if self.v6 is not None:  # IPv6 rewrites resolv.conf too: keep it merged
            self.v6.v4_dns = tuple(map(str, lease.dns))
            self.v6.v4_search = tuple(lease.search)
        publish_dns(lease, self.run_dir, self.v6)

    def republish(self) -> None:
        """Write resolv.conf again (chain mode: the real root appeared meanwhile)."""
        lease = self.client.lease
        if lease is not None:
            publish_dns(lease, self.run_dir, self.v6)

    def on_bind(self, lease: Lease) -> None:
        apply.apply(lease, self.client.ifname, self.client.clock())
        apply.write_lease(lease, self.client.ifname, self.run_dir)
        apply.maybe_set_hostname(lease.hostname)
        self._publish(lease)
        _log.info("lease %s on %s bound, %ds", lease.address, self.client.ifname, lease.lease_time)

    def on_renew(self, lease: Lease) -> None:
        self.renewals += 1
        apply.apply(lease, self.client.ifname, self.client.clock())
        apply.write_lease(lease, self.client.ifname, self.run_dir)
        self._publish(lease)
        _log.info("lease %s on %s renewed (%d)", lease.address, self.client.ifname, self.renewals)

    def on_expire(self, lease: Lease) -> None:
        _log.warning("lease %s on %s expired: removing it", lease.address, self.client.ifname)
        apply.remove(lease, self.client.ifname)
        self._record(None)


def _follow_switch(
    notify_fd: int, root_fd: int | None, entered: Callable[[], None] = lambda: None
) -> None:
    """Thread: wait for PID 1's word, then chroot into the real root."""
    try:
        data = os.read(notify_fd, 1)
    except OSError:
        data = b""
    if data != SWITCHED or root_fd is None:
        return  # PID 1 stays in the initramfs (fallback): so do we
    try:
        os.fchdir(root_fd)
        os.chroot(".")
        os.chdir("/")
        _log.info("daemon now runs in the real root")
    except OSError as exc:
        _log.error("cannot enter the real root: %s", exc)
        return
    entered()


def _follow_chain(notify_fd: int, run_fd: int, entered: Callable[[], None]) -> None:
    """Thread: once PID 1 has handed over to the distro init, follow it (chain mode)."""
    root = os.stat("/")
    try:
        data = os.read(notify_fd, 1)
    except OSError:
        data = b""
    if not data:
        return  # PID 1 never handed over (its fallback): stay here

    def done(f: chainfollow.Follow) -> None:
        now = os.stat("/")
        followed = (now.st_dev, now.st_ino) != (root.st_dev, root.st_ino)
        section = {"followed": followed, "events": f.events}
        try:
            state.set_section(RUN_DIR, "chain", section)
        except OSError as exc:
            _log.warning("state.json not updated: %s", exc)
        if followed:  # the real root's /run: keep its network managers off our links
            try:
                written = coexist.hand_off_from_state(RUN_DIR)
                _log.info("network managers kept off mosnet's links: %s", ", ".join(written))
            except (OSError, state.StateError) as exc:
                _log.warning("network manager files not written: %s", exc)
        entered()

    f = chainfollow.Follow(run_fd, (root.st_dev, root.st_ino))
    chainfollow.follow(f, done)


def _daemon_main(
    client: Client | None,
    notify_fd: int,
    root_fd: int | None,
    v6: ipv6.Ipv6State | None,
    proxy: ProxySpec | None,
    run_fd: int | None = None,
) -> None:
    proctitle.set_title(TITLE)
    os.setsid()
    # an eventfd, not a threading.Event: the DHCP loop sleeps on it with its
    # sockets, so SIGTERM wakes it at once and nothing polls a flag on a timer
    stop = wake.Waker()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    supervisor = Supervisor(proxy) if proxy is not None else None
    if supervisor is not None:  # first: it forks, best with no other threads around yet
        threading.Thread(target=supervisor.run, daemon=True).start()
    keeper = LeaseKeeper(client, v6=v6) if client is not None else None

    def entered() -> None:
        if supervisor is not None:
            supervisor.renew()
        if keeper is not None:
            keeper.republish()  # the real root's /etc/resolv.conf

    if run_fd is not None:
        follow = threading.Thread(target=_follow_chain, args=(notify_fd, run_fd, entered))
    else:
        follow = threading.Thread(target=_follow_switch, args=(notify_fd, root_fd, entered))
    follow.daemon = True
    follow.start()
    if v6 is not None and (v6.client is not None or v6.deferred):
        threading.Thread(target=ipv6.run_forever, args=(v6, stop.is_set), daemon=True).start()
    _log.info("daemon started (pid %d)", os.getpid())
    if client is not None and keeper is not None:
        client.run_forever(keeper.on_bind, keeper.on_expire, stop.is_set, on_renew=keeper.on_renew,
                           wake_fd=stop.fileno())  # fmt: skip
    while not stop.wait():  # a signal handler runs between polls (PEP 475)
        pass
    if supervisor is not None:
        supervisor.stop()
    _log.info("daemon stopping on SIGTERM; addresses stay until their lifetimes end")


def spawn(
    client: Client | None,
    new_root: str | None,
    v6: ipv6.Ipv6State | None = None,
    proxy: ProxySpec | None = None,
    chain: bool = False,
) -> DaemonHandle:
    """Fork the daemon; the parent gets a handle, the child never returns.

    ``chain``: PID 1 will exec a distro init, which mounts the root itself;
    /run/mosnet is opened here, before that init can mount over /run.
    """
    root_fd = os.open(new_root, os.O_PATH | os.O_DIRECTORY) if new_root else None
    run_fd = os.open(RUN_DIR, os.O_PATH | os.O_DIRECTORY) if chain else None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(write_fd)
            _daemon_main(client, read_fd, root_fd, v6, proxy, run_fd)
        except BaseException:
            _log.exception("daemon crashed")
            code = 1
        finally:
            os._exit(code)  # never fall back into PID 1's code
    os.close(read_fd)
    for fd in (root_fd, run_fd):
        if fd is not None:
            os.close(fd)
    if client is not None:
        client.close()  # the daemon owns the sockets now
    if v6 is not None:
        ipv6.stop(v6)
    _log.info("forked daemon pid %d", pid)
    return DaemonHandle(pid, write_fd, chain)
