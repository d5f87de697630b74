"""The OpenFlow MAC NAT text (golden) and the pure parts of mosnet.ovs."""

from __future__ import annotations

import pathlib
import time

import pytest

from mosnet import ovs, ovsflows

NIC_MAC = "52:54:00:12:34:56"
CT = "02:00:00:aa:bb:01"

GOLDEN = """\
priority=10,in_port=eth0,actions=NORMAL
priority=10,in_port=public,actions=NORMAL
priority=110,in_port=c0,dl_src=02:00:00:aa:bb:01,arp,arp_spa=10.0.0.50,arp_sha=02:00:00:aa:bb:01,\
actions=mod_dl_src:52:54:00:12:34:56,set_field:52:54:00:12:34:56->arp_sha,output:eth0
priority=100,in_port=c0,dl_src=02:00:00:aa:bb:01,ip,nw_src=10.0.0.50,\
actions=mod_dl_src:52:54:00:12:34:56,output:eth0
priority=100,in_port=eth0,arp,arp_tpa=10.0.0.50,actions=mod_dl_dst:02:00:00:aa:bb:01,output:c0
priority=100,in_port=eth0,ip,nw_dst=10.0.0.50,actions=mod_dl_dst:02:00:00:aa:bb:01,output:c0
priority=110,in_port=c0,dl_src=02:00:00:aa:bb:01,icmp6,icmp_type=135,icmp_code=0,\
nd_sll=02:00:00:aa:bb:01,actions=mod_dl_src:52:54:00:12:34:56,\
set_field:52:54:00:12:34:56->nd_sll,output:eth0
priority=110,in_port=c0,dl_src=02:00:00:aa:bb:01,icmp6,icmp_type=136,icmp_code=0,\
nd_tll=02:00:00:aa:bb:01,actions=mod_dl_src:52:54:00:12:34:56,\
set_field:52:54:00:12:34:56->nd_tll,output:eth0
priority=100,in_port=c0,dl_src=02:00:00:aa:bb:01,ipv6,ipv6_src=2001:db8::50,\
actions=mod_dl_src:52:54:00:12:34:56,output:eth0
priority=100,in_port=eth0,icmp6,icmp_type=135,icmp_code=0,nd_target=2001:db8::50,\
actions=mod_dl_dst:02:00:00:aa:bb:01,output:c0
priority=100,in_port=eth0,ipv6,ipv6_dst=2001:db8::50,actions=mod_dl_dst:02:00:00:aa:bb:01,output:c0
priority=50,in_port=c0,actions=drop
priority=0,actions=drop
"""


def test_render_golden() -> None:
    # v6 given first: the output is still sorted, v4 before v6.
    guests = {"2001:db8::50": (CT.upper(), "c0"), "10.0.0.50": (CT, "c0")}
    assert ovsflows.render("eth0", "public", NIC_MAC.upper(), guests) == GOLDEN


def test_no_guests_only_host_and_drop() -> None:
    assert ovsflows.render(1, 2, NIC_MAC, {}) == (
        "priority=10,in_port=1,actions=NORMAL\n"
        "priority=10,in_port=2,actions=NORMAL\n"
        "priority=0,actions=drop\n"
    )


def test_every_guest_port_ends_in_drop() -> None:
    guests = {"10.0.0.5": (CT, 7), "10.0.0.6": ("02:00:00:aa:bb:02", 8), "10.0.0.7": (CT, 7)}
    text = ovsflows.render("eth0", "public", NIC_MAC, guests)
    drops = [line for line in text.splitlines() if line.startswith("priority=50,")]
    assert drops == ["priority=50,in_port=7,actions=drop", "priority=50,in_port=8,actions=drop"]
    # nothing a guest sends reaches the uplink with its own MAC
    for line in text.splitlines():
        if "in_port=7" in line and "output:eth0" in line:
            assert f"mod_dl_src:{NIC_MAC}" in line


@pytest.mark.parametrize(
    ("nic", "host", "mac", "guests"),
    [
        ("eth0", "public", "01:00:00:00:00:01", {}),  # multicast uplink MAC
        ("eth0", "public", "52:54:00:12:34", {}),
        ("eth0", "eth0", NIC_MAC, {}),
        ("eth0", "public", NIC_MAC, {"10.0.0.5": (CT, "eth0")}),
        ("eth0", "public", NIC_MAC, {"10.0.0.5": (NIC_MAC, "c0")}),
        ("eth0", "public", NIC_MAC, {"10.0.0.300": (CT, "c0")}),
        ("eth0,actions=flood", "public", NIC_MAC, {}),
        ("LOCAL", "public", NIC_MAC, {}),
        (0, "public", NIC_MAC, {}),
    ],
)
def test_bad_input_rejected(
    nic: ovsflows.Port, host: ovsflows.Port, mac: str, guests: dict[str, tuple[str, ovsflows.Port]]
) -> None:
    with pytest.raises(ValueError):
        ovsflows.render(nic, host, mac, guests)


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
    found = ovs.tcp_listeners(proc=str(tmp_path))
    assert found == [
        "0.0.0.0:6633",
        "127.0.0.1:6653",
        "0000:0000:0000:0000:0000:0000:0000:0000:6640",
    ]
    assert not ovs.listeners_ok(str(tmp_path))
    (net / "tcp").write_text(head)
    (net / "tcp6").write_text(head)
    assert ovs.listeners_ok(str(tmp_path))


def test_start_without_ovs_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(ovs, "find_binary", lambda name: None)
    res = ovs.start(str(tmp_path / "run"))
    assert not res.ok and res.ovsdb_pid is None
    assert "not found" in res.errors[0]


def test_wait_uptime_only_when_early(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "clock_gettime", lambda clock: 4.0)
    monkeypatch.setattr(time, "sleep", slept.append)
    assert ovs._wait_uptime(10.0) is not None
    assert slept == [6.0]
    assert ovs._wait_uptime(3.0) is None
    assert slept == [6.0]


def test_paths_and_controller_stay_in_run_dir() -> None:
    p = ovs.paths("/run/x")
    assert all(v.startswith("/run/x/") for v in p.values())
    # ovs-vswitchd refuses punix: controllers not named <run_dir>/<bridge>.*
    assert p["controller"].startswith("/run/x/br-mosnet.")
