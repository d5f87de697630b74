"""state.json: locking, schema, lease timers, the boot log and PID 1's record."""

from __future__ import annotations

import json
import logging
import multiprocessing
import pathlib
from ipaddress import IPv4Address

import pytest

from init import handoff
from mosnet.base import log
from mosnet.dhcp4.lease import Lease
from mosnet.nft.firewall import FirewallResult
from mosnet.state import statefile


def _bump(run_dir: str, key: str, times: int) -> None:
    for _ in range(times):
        statefile.update(run_dir, lambda st: st.__setitem__(key, st.get(key, 0) + 1))


def test_concurrent_writers_lose_nothing(tmp_path: pathlib.Path) -> None:
    procs = [
        multiprocessing.Process(target=_bump, args=(str(tmp_path), key, 40))
        for key in ("daemon", "pid1", "daemon")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    st = statefile.load(str(tmp_path))
    assert (st["daemon"], st["pid1"], st["schema"]) == (80, 40, statefile.SCHEMA)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("{not json", "unreadable"), ("[1]", "no schema"),
     ('{"schema": 99}', "newer")],
)  # fmt: skip
def test_load_says_what_is_wrong(tmp_path: pathlib.Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / statefile.STATE_FILE).write_text(content)
    with pytest.raises(statefile.StateError, match=message):
        statefile.load(str(tmp_path))


def test_set_section_replaces_and_removes(tmp_path: pathlib.Path) -> None:
    statefile.set_section(str(tmp_path), "lease", {"a": 1})
    statefile.set_section(str(tmp_path), "other", 2)
    assert statefile.load(str(tmp_path))["lease"] == {"a": 1}
    statefile.set_section(str(tmp_path), "lease", None)
    assert (
        "lease" not in statefile.load(str(tmp_path)) and statefile.load(str(tmp_path))["other"] == 2
    )


def _lease(acquired_at: float) -> Lease:
    return Lease(
        address=IPv4Address("10.0.0.5"), prefixlen=24, server_id=IPv4Address("10.0.0.1"),
        lease_time=3600, t1=1800, t2=3150, acquired_at=acquired_at,
        routers=(IPv4Address("10.0.0.1"),), dns=(IPv4Address("10.0.0.53"),),
    )  # fmt: skip


def test_lease_timers_become_wall_times() -> None:
    sec = statefile.lease_section(_lease(100.0), "mos", now_monotonic=160.0, now_wall=1_000_000.0)
    assert sec["obtained"] == 1_000_000.0 - 60
    assert sec["renew_at"] == sec["obtained"] + 1800
    assert sec["rebind_at"] == sec["obtained"] + 3150
    assert sec["expires_at"] == sec["obtained"] + 3600
    assert (sec["address"], sec["server"], sec["ifname"]) == ("10.0.0.5/24", "10.0.0.1", "mos")


def test_boot_log_file_survives_setup(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "boot.log"
    log.setup(stderr=False)
    log.add_file(str(path))
    log.get("test").info("first line")
    log.setup(stderr=False)  # PID 1 calls setup again once it knows the command line
    log.get("test").warning("second line")
    text = path.read_text()
    assert "info    first line" in text and "warning second line" in text
    for h in list(logging.getLogger(log.PREFIX).handlers):
        logging.getLogger(log.PREFIX).removeHandler(h)


def test_record_writes_every_section_and_keeps_a_newer_daemon_lease(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = str(tmp_path)
    (tmp_path / "resolv.conf").write_text("nameserver 10.0.0.53\nsearch example.org\n")
    monkeypatch.setattr(statefile, "interface_snapshot", lambda ipr, names: ([], []))
    monkeypatch.setattr(handoff, "session", _NullSession)
    facts = handoff.NetFacts("dhcp", "eth0", "offer ...", "52:54:00:00:00:01", "linux", "mos")
    facts.firewall, facts.firewall_requested = FirewallResult(applied=("inet mosnet",)), True
    boot = handoff.boot_section({"network": 1.5}, "switch_root", "/dev/vda", None)
    services = {"daemon": {"pid": 42}, "proxy": None}
    handoff.record(run, boot, facts, _lease(100.0), 160.0, services)
    st = statefile.load(run)
    assert st["network"]["dns"] == {"servers": ["10.0.0.53"], "search": ["example.org"]}
    assert st["network"]["bridge"] == "br-mosnet" and st["network"]["port"] == "mos"
    assert st["firewall"]["tables"] == ["inet mosnet"] and st["daemon"] == {"pid": 42}
    assert st["boot"]["timings_ms"] == {"network": 1500.0}
    newer = dict(st["lease"], obtained=st["lease"]["obtained"] + 500)
    statefile.set_section(run, "lease", newer)
    handoff.record(run, boot, facts, _lease(100.0), 160.0, services)
    assert statefile.load(run)["lease"] == newer
    json.dumps(statefile.load(run))  # plain JSON all the way down


class _NullSession:
    def __enter__(self) -> object:
        return object()

    def __exit__(self, *exc: object) -> None:
        return None
