"""The pure parts of mosnet.ovs.vswitch: paths, listeners, the 3.1.0 handler-bug guards."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from mosnet.ovs import ovslisten, vswitch


def test_tcp_listeners(tmp_path: pathlib.Path) -> None:
    net = tmp_path / "net"
    net.mkdir()
    head = "  sl  local_address rem_address   st\n"
    (net / "tcp").write_text(
        head
        + "   0: 00000000:19E9 00000000:0000 0A 0\n"  # 0.0.0.0:6633 listening
        + "   1: 0100007F:19FD 00000000:0000 0A 0\n"  # 127.0.0.1:6653 listening
        + "   2: 0100007F:19F0 0100007F:9C40 01 0\n"  # 6640 established: not a listener
        + "   3: 00000000:0016 00000000:0000 0A 0\n"  # ssh: not ours
    )
    (net / "tcp6").write_text(
        head
        + "   0: 00000000000000000000000000000000:19F0 00000000000000000000000000000000:0000 0A 0\n"
    )
    found = ovslisten.tcp_listeners(proc=str(tmp_path))
    assert found == [
        "0.0.0.0:6633",
        "127.0.0.1:6653",
        "0000:0000:0000:0000:0000:0000:0000:0000:6640",
    ]
    assert not ovslisten.listeners_ok(str(tmp_path))
    (net / "tcp").write_text(head)
    (net / "tcp6").write_text(head)
    assert ovslisten.listeners_ok(str(tmp_path))


def test_start_without_ovs_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(vswitch, "find_binary", lambda name: None)
    res = vswitch.start(str(tmp_path / "run"))
    assert not res.ok and res.ovsdb_pid is None
    assert "not found" in res.errors[0]


def test_start_checks_the_datapath_it_was_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """No openvswitch.ko: the kernel datapath is refused, netdev goes on to start."""
    monkeypatch.setattr(vswitch, "find_binary", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os.path, "exists", lambda path: True)
    monkeypatch.setattr(vswitch, "kernel_datapath", lambda *a, **k: False)
    monkeypatch.delenv("MOSNET_OVS_DATAPATH", raising=False)
    seen: list[str] = []

    def fake_start_ovsdb(run_dir: str, timeout: float, runtime: object) -> tuple[None, str]:
        seen.append(run_dir)
        return None, "stop here"

    monkeypatch.setattr(vswitch, "_start_ovsdb", fake_start_ovsdb)
    refused = vswitch.start(str(tmp_path / "a"), datapath="system")
    assert "system datapath not found" in refused.errors[0] and seen == []
    netdev = vswitch.start(str(tmp_path / "b"), datapath="netdev")
    assert netdev.errors == ("stop here",) and seen == [str(tmp_path / "b")]


def test_wait_uptime_only_when_early(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "clock_gettime", lambda clock: 4.0)
    monkeypatch.setattr(time, "sleep", slept.append)
    assert vswitch._wait_uptime(10.0) is not None
    assert slept == [6.0]
    assert vswitch._wait_uptime(3.0) is None
    assert slept == [6.0]


def test_paths_and_controller_stay_in_run_dir() -> None:
    p = vswitch.paths("/run/x")
    assert all(v.startswith("/run/x/") for v in p.values())
    # ovs-vswitchd refuses punix: controllers not named <run_dir>/<bridge>.*
    assert p["controller"].startswith("/run/x/br-mosnet.")


def test_handler_bug_in_the_log_is_an_error(tmp_path: pathlib.Path) -> None:
    log = pathlib.Path(vswitch.paths(str(tmp_path))["vswitchd_log"])
    assert vswitch.handler_bug(str(tmp_path)) is None  # no log at all
    log.write_text("bridge|INFO|bridge br-mosnet: added interface eth0 on port 1\n")
    assert vswitch.handler_bug(str(tmp_path)) is None
    log.write_text(
        "ofproto_dpif_upcall|INFO|Overriding n-handler-threads to 0, "
        "setting n-revalidator-threads to 1\n"
    )
    err = vswitch.handler_bug(str(tmp_path))
    assert err is not None and "0 upcall handlers" in err


def test_build_bridge_fails_when_the_bug_hit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(vswitch, "vsctl", lambda *a, **k: None)
    pathlib.Path(vswitch.paths(str(tmp_path))["vswitchd_log"]).write_text(vswitch.HANDLER_BUG)
    res = vswitch.build_bridge("eth0", "public", "52:54:00:12:34:56", run_dir=str(tmp_path))
    assert not res.ok and "forward nothing" in res.errors[0]


def test_kernel_datapath_needs_the_module(tmp_path: pathlib.Path) -> None:
    sysfs, mods = tmp_path / "sys", tmp_path / "lib"
    (mods / "6.1.0").mkdir(parents=True)
    (sysfs / "module").mkdir(parents=True)
    args = {"sysfs": str(sysfs), "lib_modules": str(mods)}
    assert not vswitch.kernel_datapath("6.1.0", **args)
    (mods / "6.1.0" / "modules.dep").write_text(
        "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko\n"
    )
    assert not vswitch.kernel_datapath("6.1.0", **args)
    (mods / "6.1.0" / "modules.dep").write_text(
        "kernel/net/openvswitch/openvswitch.ko: kernel/net/nsh/nsh.ko\n"
    )
    assert vswitch.kernel_datapath("6.1.0", **args)
    (mods / "6.1.0" / "modules.dep").unlink()
    (sysfs / "module" / "openvswitch").mkdir()
    assert vswitch.kernel_datapath("6.1.0", **args)
