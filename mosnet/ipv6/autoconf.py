"""IPv6 in DHCP mode: RA information, DHCPv6 when asked, DNS into resolv.conf.

The kernel does SLAAC and the default route from the RA (``accept_ra=2`` on
the bridge's internal port, set by the plan). On top of that:

* listen for one RA (soliciting it) and read M/O, RDNSS and DNSSL;
* M set, or ``want_dhcp6``: stateful DHCPv6 (IA_NA /128 address + DNS);
  only O set: stateless INFORMATION-REQUEST for DNS;
* hand the DNS servers to the resolv.conf owner, which merges them with IPv4's.

``start`` is for PID 1: bounded by ``ra_timeout + dhcp6_timeout`` (+ DAD
wait) and never raises. ``run_forever`` is for the daemon: it keeps the
DHCPv6 lease (or the stateless info) fresh until ``should_stop()``.
RDNSS/DNSSL lifetimes are recorded but not aged out (we read one RA).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import TypeVar

from mosnet.base import log
from mosnet.dhcp6 import apply
from mosnet.dhcp6.client import Client, ClientConfig
from mosnet.dhcp6.lease import Info, Lease6
from mosnet.ipv6.ra import RouterAdvert, wait_for_ra
from mosnet.state import resolvconf

_log = log.get("ipv6")
T = TypeVar("T")


@dataclass
class Ipv6State:
    ifname: str
    run_dir: str
    mode: str = "none"  # none | slaac | stateful | stateless
    ra: RouterAdvert | None = None
    lease: Lease6 | None = None
    info: Info | None = None
    client: Client | None = None  # kept open for run_forever
    resolv: resolvconf.ResolvConf | None = None  # shared with the DHCPv4 side
    errors: list[str] = field(default_factory=list)
    deferred: bool = False  # RA and DHCPv6 left to the daemon (run_forever)

    @property
    def dns(self) -> tuple[IPv6Address, ...]:
        out: list[IPv6Address] = []
        if self.ra is not None and self.ra.rdnss_lifetime:
            out += self.ra.rdnss
        out += self.lease.dns if self.lease else ()
        out += self.info.dns if self.info else ()
        return tuple(dict.fromkeys(out))

    @property
    def search(self) -> tuple[str, ...]:
        ra = list(self.ra.dnssl) if self.ra and self.ra.dnssl_lifetime else []
        dhcp = self.lease.domains if self.lease else self.info.domains if self.info else ()
        return tuple(resolvconf.merge_search(ra, dhcp))


def start(
    ifname: str,
    run_dir: str,
    *,
    want_dhcp6: bool = False,
    ra_timeout: float = 3.0,
    dhcp6_timeout: float = 10.0,
    resolv: resolvconf.ResolvConf | None = None,
    config: ClientConfig | None = None,
    defer: bool = False,
) -> Ipv6State:
    """RA, then DHCPv6 if the RA or the command line asks; resolv.conf. Never raises.

    ``defer=True`` returns at once and leaves all of it to ``run_forever``.
    """
    state = Ipv6State(ifname, run_dir, resolv=resolv)
    if defer:
        # Off the boot path: the kernel does SLAAC itself (accept_ra=2); the
        # daemon waits for the RA (DNS, M/O flags) and runs DHCPv6 if asked.
        state.deferred = True
        _log.info("ipv6 %s: RA and DHCPv6 left to the daemon", ifname)
        return state
    try:
        _start(state, want_dhcp6, ra_timeout, dhcp6_timeout, config or ClientConfig())
    except Exception as exc:  # PID 1 must go on booting whatever happens here
        _log.exception("ipv6 %s: %s", ifname, exc)
        state.errors.append(str(exc))
    write_resolv(state)
    return state


def _start(
    state: Ipv6State,
    want_dhcp6: bool,
    ra_timeout: float,
    dhcp6_timeout: float,
    config: ClientConfig,
) -> None:
    ra = state.ra = wait_for_ra(state.ifname, ra_timeout) if ra_timeout > 0 else None
    if ra is not None:
        _log.info(
            "ipv6 %s: RA from %s M=%d O=%d lifetime %d s, %d prefixes, rdnss %s",
            state.ifname,
            ra.router,
            ra.managed,
            ra.other,
            ra.router_lifetime,
            len(ra.prefixes),
            " ".join(map(str, ra.rdnss)) or "-",
        )
        state.mode = "slaac"
    else:
        _log.info("ipv6 %s: no RA within %.1f s", state.ifname, ra_timeout)
    stateful = want_dhcp6 or (ra is not None and ra.managed)
    stateless = ra is not None and ra.other
    if not (stateful or stateless):
        return
    client = state.client = Client(state.ifname, config=config)
    if stateful:
        state.lease = client.acquire(dhcp6_timeout)
        if state.lease is not None:
            state.mode = "stateful"
            _bound(state, state.lease)
            return
    if stateless:
        state.info = client.inform(dhcp6_timeout)
        state.mode = "stateless" if state.info else state.mode


def _bound(state: Ipv6State, lease: Lease6) -> None:
    client = state.client
    now = client.clock() if client else 0.0
    apply.apply_lease6(lease, state.ifname, now)
    apply.write_lease(lease, state.ifname, state.run_dir)


def write_resolv(state: Ipv6State) -> bool:
    """Hand IPv6's DNS to the resolv.conf owner (merged with IPv4's); never raises."""
    if state.resolv is None:
        return False
    source = f"mosnet ipv6 {state.ifname} ({state.mode})"
    return state.resolv.set_v6(resolvconf.DnsInfo.of(state.dns, state.search, source))


DEFERRED_RA_TIMEOUT = 30.0  # routers advertise at least every 600 s; most every few s
DEFERRED_DHCP6_TIMEOUT = 30.0


def run_forever(state: Ipv6State, should_stop: Callable[[], bool]) -> None:
    """Daemon: renew/rebind the lease (or refresh stateless info) until ``should_stop()``.

    A deferred state first waits (up to ``DEFERRED_RA_TIMEOUT``) for the RA
    and starts DHCPv6 if it asks. Returns when there is no DHCPv6 client to
    run. Never raises.
    """
    if state.deferred and state.client is None:
        state.deferred = False
        try:
            _start(state, False, DEFERRED_RA_TIMEOUT, DEFERRED_DHCP6_TIMEOUT, ClientConfig())
        except Exception as exc:  # the daemon's other duties must survive us
            _log.exception("ipv6 %s: %s", state.ifname, exc)
        write_resolv(state)
    client = state.client
    if client is None:
        return
    try:
        client.run_forever(
            lambda lease: _guard(_on_bind, state, lease),
            lambda lease: _guard(_on_expire, state, lease),
            should_stop,
            on_info=lambda info: _guard(_on_info, state, info),
        )
    except Exception as exc:  # the daemon's other duties must survive us
        _log.exception("ipv6 %s: dhcp6 loop died: %s", state.ifname, exc)


def _guard(fn: Callable[[Ipv6State, T], None], state: Ipv6State, arg: T) -> None:
    try:
        fn(state, arg)
    except Exception as exc:
        _log.exception("ipv6 %s: %s", state.ifname, exc)


def _on_bind(state: Ipv6State, lease: Lease6) -> None:
    old = state.lease
    state.lease, state.mode = lease, "stateful"
    _bound(state, lease)
    if old is None or old.dns != lease.dns or old.domains != lease.domains:
        write_resolv(state)


def _on_expire(state: Ipv6State, lease: Lease6) -> None:
    state.lease = None
    apply.remove_lease6(lease, state.ifname)
    apply.remove_lease(state.ifname, state.run_dir)
    write_resolv(state)


def _on_info(state: Ipv6State, info: Info) -> None:
    changed = state.info is None or state.info.dns != info.dns
    state.info = info
    if changed:
        write_resolv(state)


def stop(state: Ipv6State, *, release: bool = False) -> None:
    """Close the DHCPv6 socket (optionally RELEASE first); never raises."""
    client, state.client = state.client, None
    if client is None:
        return
    try:
        if release:
            client.release()
    except OSError as exc:
        _log.warning("ipv6 %s: release: %s", state.ifname, exc)
    finally:
        client.close()
