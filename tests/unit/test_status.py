"""mosnet status: liveness by /proc (a fake tree), lease timers, missing addresses, exit codes."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from mosnet import cli
from mosnet.state import statefile, status

NOW = 1_800_000_000.0


def _proc(root: pathlib.Path, pid: int, title: str, ppid: int) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "cmdline").write_bytes(title.encode() + b"\0")
    (d / "stat").write_text(f"{pid} (mosnet-init.bin) S {ppid} {pid} {pid} 0 -1\n")


def _state(**extra: object) -> statefile.State:
    st: statefile.State = {
        "schema": 1,
        "boot": {"result": "switch_root", "uptime": 3.2, "timings_ms": {"network": 1200.0}},
        "network": {
            "mode": "dhcp", "nic": "eth0", "nic_reason": "offer", "backend": "linux",
            "bridge": "br-mosnet", "port": "mos", "dns": {"servers": ["10.0.0.53"], "search": []},
            "addresses": [{"ifname": "mos", "address": "10.0.0.5/24", "scope": "global"},
                          {"ifname": "mos", "address": "fe80::1/64", "scope": "link"}],
            "routes": [{"dst": "default", "via": "10.0.0.1", "dev": "mos"}],
        },
        "firewall": {"requested": False},
        "daemon": {"pid": 40},
        "proxy": {"backend": "linux"},
        "lease": {"ifname": "mos", "address": "10.0.0.5/24", "renew_at": NOW + 600,
                  "rebind_at": NOW + 1200, "expires_at": NOW + 1800},
    }  # fmt: skip
    st.update(extra)
    return st


def test_daemon_and_proxy_found_by_title_and_parent(tmp_path: pathlib.Path) -> None:
    _proc(tmp_path, 40, "@mosnet-daemon", 1)
    _proc(tmp_path, 41, "@mosnet-proxy", 40)
    _proc(tmp_path, 50, "@mosnet-proxy", 1)  # not the daemon's child: not ours
    checks = {c.name: c for c in status.process_checks(_state(), str(tmp_path))}
    assert checks["daemon"].ok and checks["proxy"].ok and "41" in checks["proxy"].detail


def test_the_watcher_is_checked_when_state_names_one(tmp_path: pathlib.Path) -> None:
    _proc(tmp_path, 40, "@mosnet-daemon", 1)
    _proc(tmp_path, 42, "@mosnet-watch", 40)
    _proc(tmp_path, 43, "/bin/sleep", 1)
    checks = {c.name: c for c in status.process_checks(_state(), str(tmp_path))}
    assert "watch" not in checks  # an older state.json without one: nothing to check
    st = _state(watch={"pid": 42, "restarts": {"@mosnet-daemon": 1}})
    checks = {c.name: c for c in status.process_checks(st, str(tmp_path))}
    assert checks["watch"].ok and checks["watch"].detail == "pid 42 running"
    st = _state(watch={"pid": 43})  # a reused pid is not the watcher
    assert not {c.name: c for c in status.process_checks(st, str(tmp_path))}["watch"].ok


def test_a_reused_pid_is_not_the_daemon(tmp_path: pathlib.Path) -> None:
    _proc(tmp_path, 40, "/usr/sbin/sshd", 1)
    checks = {c.name: c for c in status.process_checks(_state(), str(tmp_path))}
    assert not checks["daemon"].ok and not checks["proxy"].ok


def test_ovs_daemons_by_pidfile(tmp_path: pathlib.Path) -> None:
    proc, run = tmp_path / "proc", tmp_path / "ovs"
    run.mkdir()
    _proc(proc, 40, "@mosnet-daemon", 1)
    _proc(proc, 41, "@mosnet-proxy", 40)
    _proc(proc, 60, "@ovsdb-server", 1)
    (run / "ovsdb-server.pid").write_text("60\n")
    (run / "ovs-vswitchd.pid").write_text("61\n")  # gone
    st = _state(ovs={"run_dir": str(run)})
    checks = {c.name: c.ok for c in status.process_checks(st, str(proc))}
    assert checks == {"daemon": True, "proxy": True, "ovsdb-server": True, "ovs-vswitchd": False}


@pytest.mark.parametrize(
    ("now", "ok", "words"),
    [(NOW, True, "renews in 10 min 0 s"), (NOW + 900, True, "renewal overdue by 5 min"),
     (NOW + 1900, False, "expired 1 min 40 s ago")],
)  # fmt: skip
def test_lease_timers(now: float, ok: bool, words: str) -> None:
    [check] = status.lease_checks(_state(), now)
    assert check.ok is ok and words in check.detail


def test_dhcp_without_a_lease_fails() -> None:
    st = _state()
    del st["lease"]
    assert not status.lease_checks(st, NOW)[0].ok


def test_missing_address_and_default_route() -> None:
    have = [{"ifname": "mos", "address": "10.0.0.5/24"}]
    route = [{"dst": "default", "via": "10.0.0.1", "dev": "mos"}]
    assert all(c.ok for c in status.network_checks(_state(), have, route))
    checks = status.network_checks(_state(), [], [])
    assert [c.ok for c in checks] == [False, False]
    assert "10.0.0.5/24 on mos" in checks[0].detail and "via 10.0.0.1" in checks[1].detail


def _write(tmp_path: pathlib.Path, st: statefile.State) -> str:
    (tmp_path / statefile.STATE_FILE).write_text(json.dumps(st))
    return str(tmp_path)


def test_cli_exit_codes_and_json(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW)
    monkeypatch.setattr(status, "live_network", lambda st: ([], []))  # everything gone
    run = _write(tmp_path, _state())
    assert cli.main(["status", "--run-dir", run]) == 0  # without --check: informs only
    human = capsys.readouterr().out
    assert "mode      dhcp on eth0 (offer)" in human and "FAIL addresses" in human
    assert cli.main(["status", "--check", "--json", "--run-dir", run]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["state"]["network"]["port"] == "mos"
    assert {c["name"] for c in out["checks"] if not c["ok"]} >= {"addresses", "default route"}
    assert cli.main(["status", "--check", "--run-dir", str(tmp_path / "none")]) == 2


def test_fallback_boot_fails_the_check() -> None:
    st = _state(boot={"result": "fallback: RootNotFound: /dev/vda"})
    assert not status.boot_checks(st)[0].ok


def test_chain_boot_passes_only_once_the_daemon_followed() -> None:
    st = _state(boot={"result": "chain"})
    checks = {c.name: c.ok for c in status.boot_checks(st)}
    assert checks == {"boot": True, "chain": False}
    st["chain"] = {"followed": True, "events": []}
    assert all(c.ok for c in status.boot_checks(st))
