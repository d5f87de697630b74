"""The lease sequence, once for the boot and the daemon: apply, announce, record, publish.

Every bind and renewal goes through :class:`LeaseKeeper`: the address, MTU
and routes as plan actions (``mosnet.topology.lease``), a gratuitous ARP on
a new bind, ``/run/mosnet/lease-<if>.json`` and ``state.json``, the hostname,
and the DNS servers to the resolv.conf owner. PID 1 binds the first lease
with it; the daemon keeps it. A daemon started to replace one that died reads
the record back (:func:`recorded_lease`) and carries on from there instead of
asking anew. An expired or NAKed lease removes its record, so it is never
taken over.
"""

from __future__ import annotations

import contextlib
import json
import os

from mosnet.base import log, netif
from mosnet.base.errors import shown
from mosnet.dhcp4 import publish
from mosnet.dhcp4.client import Client
from mosnet.dhcp4.lease import Lease, LeaseError, from_json
from mosnet.l2 import announce
from mosnet.state import resolvconf, statefile
from mosnet.topology.lease import lease_actions
from mosnet.topology.netapply import apply_lease, remove_lease

RUN_DIR = "/run/mosnet"
_log = log.get("daemon")


def resolv_targets(run_dir: str) -> list[str]:
    """Where a lease's DNS goes: mosnet's copy and the running system's file."""
    return [os.path.join(run_dir, "resolv.conf"), "/etc/resolv.conf"]


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
        self,
        client: Client,
        run_dir: str = RUN_DIR,
        resolv: resolvconf.ResolvConf | None = None,
    ) -> None:
        self.client = client
        self.run_dir = run_dir
        self.resolv = resolv or resolvconf.ResolvConf(resolv_targets(run_dir))
        self.renewals = 0

    @property
    def ifname(self) -> str:
        return self.client.ifname

    def _record(self, lease: Lease | None) -> None:
        """The lease section of state.json (``mosnet status`` shows the timers)."""
        now = self.client.clock()
        section = None if lease is None else statefile.lease_section(lease, self.ifname, now)
        try:
            statefile.set_section(self.run_dir, "lease", section)
        except OSError as exc:
            _log.warning("state.json not updated: %s", exc)

    def _publish(self, lease: Lease) -> None:
        self._record(lease)
        source = f"mosnet DHCPv4 lease from {lease.server_id}"
        self.resolv.set_v4(resolvconf.DnsInfo.of(lease.dns, lease.search or (), source))

    def republish(self) -> None:
        """Write resolv.conf again (the real root appeared meanwhile)."""
        if self.client.lease is not None:
            self.resolv.write()

    def on_bind(self, lease: Lease) -> None:
        now = self.client.clock()
        for action in lease_actions(lease, self.ifname, now):
            _log.info("lease: %s", action)
        apply_lease(lease, self.ifname, now)
        # Tell the LAN at once where the address lives (switches, the gateway's
        # ARP cache); the proxy repeats it when it starts.
        announce.gratuitous_arp(
            self.ifname, netif.interface_mac(self.ifname), lease.address, count=1
        )
        publish.write_lease(lease, self.ifname, self.run_dir)
        publish.maybe_set_hostname(lease.hostname)
        self._publish(lease)
        _log.info(
            "%s: %s/%d via %s, dns %s, %ds", self.ifname, lease.address, lease.prefixlen,
            ",".join(map(str, lease.routers)) or "-", ",".join(map(str, lease.dns)) or "-",
            lease.lease_time,
        )  # fmt: skip

    def on_renew(self, lease: Lease) -> None:
        self.renewals += 1
        apply_lease(lease, self.ifname, self.client.clock())
        publish.write_lease(lease, self.ifname, self.run_dir)
        self._publish(lease)
        _log.info("lease %s on %s renewed (%d)", lease.address, self.ifname, self.renewals)

    def on_resume(self, lease: Lease) -> None:
        """A lease taken over from a dead daemon: make sure the kernel still has it.

        resolv.conf stays as the previous daemon wrote it (with IPv6's servers,
        which this one has not heard of yet); its IPv4 part is known again.
        """
        apply_lease(lease, self.ifname, self.client.clock())
        self._record(lease)
        source = f"mosnet DHCPv4 lease from {lease.server_id}"
        self.resolv.v4 = resolvconf.DnsInfo.of(lease.dns, lease.search or (), source)

    def on_expire(self, lease: Lease) -> None:
        _log.warning("lease %s on %s expired: removing it", lease.address, self.ifname)
        remove_lease(lease, self.ifname)
        with contextlib.suppress(OSError):  # never to be taken over
            os.unlink(lease_path(self.run_dir, self.ifname))
        self._record(None)
