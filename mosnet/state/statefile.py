"""``/run/mosnet/state.json``: what mosnet did, for the real system to read.

PID 1 writes it once before switch_root (or before its fallback); the daemon
rewrites its ``lease`` and ``lease6`` sections on every bind, renew and
expiry. Writers take an exclusive ``flock`` on ``.state.lock`` around the
read-modify-write and replace the file atomically, so readers never see half
a file and no writer loses another's section. The schema is documented in
README.md ("State hand-off"); ``schema`` goes up only on incompatible changes,
readers refuse a newer one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from socket import AF_INET, AF_INET6
from typing import Any

from mosnet.base import atomicfile
from mosnet.base.errors import MosnetError
from mosnet.dhcp4.lease import Lease

SCHEMA = 1
RUN_DIR = "/run/mosnet"
STATE_FILE = "state.json"
LOCK_FILE = ".state.lock"
LOG_FILE = "boot.log"

State = dict[str, Any]
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host"}


class StateError(MosnetError):
    """state.json is missing, unreadable or of a schema this reader does not know."""


@contextlib.contextmanager
def _locked(run_dir: str) -> Iterator[None]:
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def load(run_dir: str = RUN_DIR) -> State:
    """The current state; raises :class:`StateError` with the reason."""
    path = os.path.join(run_dir, STATE_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise StateError(f"{path}: no such file (did mosnet-init run on this boot?)") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("schema"), int):
        raise StateError(f"{path}: not a mosnet state file (no schema number)")
    if data["schema"] > SCHEMA:
        raise StateError(f"{path}: schema {data['schema']} is newer than this mosnet ({SCHEMA})")
    return data


def update(run_dir: str, change: Callable[[State], None]) -> State:
    """Read, let ``change`` edit in place, write back atomically; under the lock.

    A missing or unreadable file starts from an empty state of this schema.
    """
    with _locked(run_dir):
        try:
            state = load(run_dir)
        except StateError:
            state = {"schema": SCHEMA}
        change(state)
        state["schema"] = SCHEMA
        state["updated"] = round(time.time(), 3)
        atomicfile.write_json(os.path.join(run_dir, STATE_FILE), state)
    return state


def set_section(run_dir: str, key: str, value: Any) -> State:
    """Replace one top-level section (``None`` removes it)."""

    def change(state: State) -> None:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value

    return update(run_dir, change)


def wall_time(monotonic_at: float, now_monotonic: float, now_wall: float) -> float:
    """A monotonic instant as Unix time (lease clocks are monotonic)."""
    return round(now_wall - (now_monotonic - monotonic_at), 3)


def lease_section(
    lease: Lease, ifname: str, now_monotonic: float, now_wall: float | None = None
) -> State:
    """The DHCPv4 lease with its timers as Unix times, for ``mosnet status``."""
    wall = time.time() if now_wall is None else now_wall

    def at(instant: float) -> float:
        return wall_time(instant, now_monotonic, wall)

    return {
        "ifname": ifname,
        "address": f"{lease.address}/{lease.prefixlen}",
        "server": str(lease.server_id),
        "routers": [str(r) for r in lease.routers],
        "dns": [str(d) for d in lease.dns],
        "lease_time": lease.lease_time,
        "obtained": at(lease.acquired_at),
        "renew_at": at(lease.renew_at()),
        "rebind_at": at(lease.rebind_at()),
        "expires_at": at(lease.expires_at),
    }


def interface_snapshot(ipr: Any, ifnames: Iterable[str]) -> tuple[list[State], list[State]]:
    """Addresses and main-table routes on ``ifnames``, as the kernel has them now."""
    index = {name: ipr.link_lookup(ifname=name) for name in ifnames}
    by_index = {ids[0]: name for name, ids in index.items() if ids}
    addresses = [
        {
            "ifname": by_index[a["index"]],
            "address": f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}",
            "scope": SCOPES.get(a["scope"], str(a["scope"])),
        }
        for a in ipr.get_addr()
        if a["index"] in by_index
    ]
    routes = [
        _route_record(r, by_index[r.get_attr("RTA_OIF")])
        for family in (AF_INET, AF_INET6)
        for r in ipr.get_routes(family=family, table=254)
        if r.get_attr("RTA_OIF") in by_index
    ]
    return addresses, routes


def _route_record(route: Any, ifname: str) -> State:
    dst = route.get_attr("RTA_DST")
    record: State = {"dst": f"{dst}/{route['dst_len']}" if dst else "default", "dev": ifname}
    gateway = route.get_attr("RTA_GATEWAY")
    if gateway:
        record["via"] = gateway
    return record
