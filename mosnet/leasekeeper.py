"""The daemon's lease duties: apply and publish every (re)bind, undo expiry, take over.

Every bind and renewal is recorded in ``/run/mosnet/lease-<if>.json`` (and
``state.json``); a daemon started to replace one that died reads it back
(:func:`recorded_lease`) and carries on from there instead of asking anew.
An expired or NAKed lease removes its record, so it is never taken over.
"""

from __future__ import annotations

import contextlib
import json
import os

from mosnet import ipv6, log, resolvconf, state
from mosnet.dhcp4 import apply
from mosnet.dhcp4.client import Client
from mosnet.dhcp4.lease import Lease, LeaseError, from_json
from mosnet.errors import shown

RUN_DIR = "/run/mosnet"
_log = log.get("daemon")


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


def lease_path(run_dir: str, ifname: str) -> str:
    return os.path.join(run_dir, f"lease-{ifname}.json")


def recorded_lease(run_dir: str, ifname: str, now: float) -> Lease | None:
    """The lease the previous daemon recorded for ``ifname``; None if there is none
    usable (logged). ``now`` is the monotonic clock the record counts in."""
    path = lease_path(run_dir, ifname)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("ifname") != ifname:
            raise LeaseError(f"not a lease of {ifname}")
        lease = from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, LeaseError) as exc:  # json's errors are ValueErrors
        _log.warning("%s: not taken over: %s", path, shown(str(exc)))
        return None
    if lease.acquired_at > now + 1.0:  # counted on another clock: another boot
        _log.warning("%s: not taken over: obtained in the future", path)
        return None
    return lease


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

    def _merge_v6(self, lease: Lease) -> None:
        if self.v6 is not None:  # IPv6 rewrites resolv.conf too: keep it merged
            self.v6.v4_dns = tuple(map(str, lease.dns))
            self.v6.v4_search = tuple(lease.search)

    def _publish(self, lease: Lease) -> None:
        self._record(lease)
        self._merge_v6(lease)
        publish_dns(lease, self.run_dir, self.v6)

    def republish(self) -> None:
        """Write resolv.conf again (the real root appeared meanwhile)."""
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

    def on_resume(self, lease: Lease) -> None:
        """A lease taken over from a dead daemon: make sure the kernel still has it.

        resolv.conf stays as the previous daemon wrote it (with IPv6's servers,
        which this one has not heard of yet).
        """
        apply.apply(lease, self.client.ifname, self.client.clock())
        self._record(lease)
        self._merge_v6(lease)

    def on_expire(self, lease: Lease) -> None:
        _log.warning("lease %s on %s expired: removing it", lease.address, self.client.ifname)
        apply.remove(lease, self.client.ifname)
        with contextlib.suppress(OSError):  # never to be taken over
            os.unlink(lease_path(self.run_dir, self.client.ifname))
        self._record(None)
