"""The files that keep networkd, NetworkManager and ifupdown off mosnet's links."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from mosnet import cli
from mosnet.state import coexist

MAC = "52:54:00:12:34:56"


def test_dhcp_on_the_linux_bridge_owns_nic_bridge_port_and_peer() -> None:
    links = coexist.owned_links("eth0", MAC.upper(), "mos", "linux")
    assert links.names == ("eth0", "br-mosnet", "mos", "mos-br")
    assert links.macs == (MAC,)


def test_ovs_owns_the_datapath_link_instead_of_a_veth_peer() -> None:
    links = coexist.owned_links("enp3s0", MAC, "public", "ovs")
    assert links.names == ("enp3s0", "br-mosnet", "public", "ovs-system")


def test_after_a_rollback_only_the_nic_is_owned() -> None:
    assert coexist.owned_links("eth0", MAC, "eth0", "linux").names == ("eth0",)


def test_no_uplink_means_no_files() -> None:
    links = coexist.owned_links(None, None, None, "")
    assert not links and coexist.render(links) == {}


def test_odd_names_and_macs_never_reach_a_file() -> None:
    links = coexist.owned_links("eth0\n[Link]", "zz:00", "mos", "linux")
    assert links.names == ("br-mosnet", "mos", "mos-br") and links.macs == ()


def test_networkd_file_marks_the_links_unmanaged() -> None:
    text = coexist.networkd_text(coexist.owned_links("eth0", MAC, "public", "linux"))
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == ["[Match]", "Name=eth0 br-mosnet public public-br", "[Link]", "Unmanaged=yes"]


def test_udev_link_file_keeps_names_and_macs() -> None:
    text = coexist.udev_link_text(coexist.owned_links("eth0", MAC, "mos", "linux"))
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == [
        "[Match]",
        "OriginalName=eth0 br-mosnet mos mos-br",
        "[Link]",
        "NamePolicy=",
        "MACAddressPolicy=none",
    ]


def test_networkmanager_file_appends_to_unmanaged_devices() -> None:
    text = coexist.networkmanager_text(coexist.owned_links("eth0", MAC, "mos", "linux"))
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == [
        "[keyfile]",
        "unmanaged-devices+=interface-name:eth0;interface-name:br-mosnet;"
        f"interface-name:mos;interface-name:mos-br;mac:{MAC}",
    ]


def test_wait_online_is_skipped_only_when_every_link_is_mosnets(tmp_path: Path) -> None:
    """The ExecCondition script, run by a real shell over fake /sys/class/net trees."""
    text = coexist.wait_online_text(coexist.owned_links("eth0", MAC, "mos", "linux"))
    line = next(x for x in text.splitlines() if x.startswith("ExecCondition=/bin/sh -c '"))
    script = line.split("-c '", 1)[1].rstrip("'").replace("$$", "$")  # systemd's escaping
    assert "/sys/class/net/*" in script

    def run(*links: str) -> int:
        net = tmp_path / "-".join(links)
        for link in links:
            (net / link).mkdir(parents=True)
        fake = script.replace("/sys/class/net/*", f"{net}/*")
        return subprocess.run(["sh", "-c", fake], check=False).returncode

    assert run("lo", "eth0", "br-mosnet", "mos", "mos-br") == 1  # skip: nothing to wait for
    assert run("lo", "eth0", "br-mosnet", "mos", "mos-br", "eth1") == 0  # eth1: wait as usual
    assert run("lo", "eth0", "mosx") == 0


def test_ifstate_names_a_logical_interface_no_config_defines() -> None:
    files = coexist.ifstate_files(coexist.owned_links("eth0", MAC, "eth0", "linux"))
    assert files == {"ifstate.eth0": "eth0=mosnet\n"}


def test_write_puts_every_file_under_run(tmp_path: Path) -> None:
    links = coexist.owned_links("eth0", MAC, "mos", "linux")
    written, errors = coexist.write(links, str(tmp_path))
    assert errors == []
    rel = sorted(str(Path(p).relative_to(tmp_path)) for p in written)
    assert rel == [
        "NetworkManager/conf.d/00-mosnet.conf",
        "network/ifstate.br-mosnet",
        "network/ifstate.eth0",
        "network/ifstate.mos",
        "network/ifstate.mos-br",
        "systemd/network/00-mosnet.link",
        "systemd/network/00-mosnet.network",
        "systemd/system/systemd-networkd-wait-online.service.d/00-mosnet.conf",
    ]
    assert (tmp_path / "network/ifstate.eth0").read_text() == "eth0=mosnet\n"
    # Twice is the same as once.
    assert coexist.write(links, str(tmp_path)) == (written, [])


def test_write_leaves_an_ifstate_ifupdown_wrote_itself(tmp_path: Path) -> None:
    (tmp_path / "network").mkdir()
    (tmp_path / "network/ifstate.eth0").write_text("eth0=eth0\n")
    written, errors = coexist.write(
        coexist.owned_links("eth0", MAC, "eth0", "linux"), str(tmp_path)
    )
    assert (tmp_path / "network/ifstate.eth0").read_text() == "eth0=eth0\n"
    assert len(errors) == 1 and "ifstate.eth0" in errors[0]
    assert str(tmp_path / "systemd/network/00-mosnet.network") in written


def test_write_reports_an_unwritable_run_instead_of_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file, not a directory")
    written, errors = coexist.write(coexist.owned_links("eth0", MAC, "mos", "linux"), str(blocker))
    assert written == [] and len(errors) == 8


def _state(tmp_path: Path, network: Mapping[str, object]) -> Path:
    run_dir = tmp_path / "mosnet"
    run_dir.mkdir()
    (run_dir / "state.json").write_text(json.dumps({"schema": 1, "network": network}))
    return run_dir


def test_cli_rewrites_the_files_from_state_json(tmp_path: Path) -> None:
    network = {"nic": "eth0", "nic_mac": MAC, "port": "public", "backend": "linux"}
    run_dir = _state(tmp_path, network)
    assert cli.main(["coexist", "--run-dir", str(run_dir), "--run", str(tmp_path)]) == 0
    text = (tmp_path / "systemd/network/00-mosnet.network").read_text()
    assert "Name=eth0 br-mosnet public public-br" in text


def test_cli_print_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _state(tmp_path, {"nic": "eth0", "nic_mac": MAC, "port": "mos", "backend": "ovs"})
    assert cli.main(["coexist", "--print", "--run-dir", str(run_dir), "--run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"--- {tmp_path}/systemd/network/00-mosnet.network" in out
    assert "Name=eth0 br-mosnet mos ovs-system" in out
    assert not (tmp_path / "systemd").exists()


def test_cli_without_state_fails_cleanly(tmp_path: Path) -> None:
    assert cli.main(["coexist", "--run-dir", str(tmp_path / "none")]) == 1


def test_chain_mode_daemon_writes_the_files_into_the_real_roots_run(tmp_path: Path) -> None:
    network = {"nic": "eth0", "nic_mac": MAC, "port": "mos", "backend": "linux", "errors": []}
    run_dir = _state(tmp_path, network)
    run = tmp_path / "realrun"
    written = coexist.hand_off_from_state(str(run_dir), str(run))
    assert str(run / "systemd/network/00-mosnet.network") in written
    recorded = json.loads((run_dir / "state.json").read_text())["network"]
    assert recorded["coexist"] == written and recorded["errors"] == []


def test_chain_mode_without_an_uplink_writes_nothing(tmp_path: Path) -> None:
    run_dir = _state(tmp_path, {"nic": None, "errors": []})
    assert coexist.hand_off_from_state(str(run_dir), str(tmp_path / "realrun")) == []
    assert not (tmp_path / "realrun").exists()
