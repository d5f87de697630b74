"""mosnet under a real Debian 12 root with systemd (qemu/debroot.sh).

Each boot runs out/mosnet-initramfs.img as PID 1, switch_roots into the
debootstrap root, where systemd boots with a network manager that would
fight mosnet if left alone (a catch-all DHCP .network for networkd, NM with
ifupdown's devices handed to it, an interfaces file naming the uplink).
Scripts reach the guest through fw_cfg (see qemu/debroot.sh); they print
"DEBROOT: <tag> <text>" lines that the tests read from the serial console.

What is proved: the address, routes and bridge survive systemd's boot and a
restart of the manager; each manager reports the links as not its own;
systemd-networkd-wait-online does not hold the boot; the daemon keeps the
lease (dnsmasq acks a renewal while systemd runs); at power-off the daemon is
alive *after* systemd-shutdown's final kill, while a plain process in the
same cgroup is gone (the negative control that makes the check able to fail).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, OUT, TOP, Vm, VmSpec

SYSTEMD_TIMEOUT = 900  # TCG: kernel + mosnet ~30 s, then systemd; slow on a loaded host
COMMON = "rdinit=/mosnet-init root=LABEL=debroot rw systemd.show_status=0 loglevel=4"
# Nothing else writes to ttyS0 while the scripts report (the autologin getty would).
QUIET = "systemd.mask=serial-getty@ttyS0.service"

# Before network-pre.target. Two decoys go to the root cgroup, where the
# mosnet daemon lives: systemd-shutdown's final kill spares only the '@' one.
SETUP = r"""
for name in @debroot-decoy debroot-decoy; do
    setsid bash -c 'echo $$ > /sys/fs/cgroup/cgroup.procs && exec -a "$0" sleep 100000' \
        "$name" </dev/null >/dev/null 2>&1 &
done
"""
CATCHALL = r"""
mkdir -p /etc/systemd/network
printf '[Match]\nName=en* e* br-* mos* public*\n\n[Network]\nDHCP=yes\n' \
    > /etc/systemd/network/90-catchall.network
"""
IFUPDOWN = r"""
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address %s/24\n' \
    10.213.7.77 > /etc/network/interfaces
mkdir -p /etc/NetworkManager/conf.d
printf '[ifupdown]\nmanaged=true\n' > /etc/NetworkManager/conf.d/90-take-ifupdown.conf
"""

# After multi-user.target and network-online.target.
REPORT = r"""
snap() {
    ip -o addr show | sed "s/^/net $1 addr /"
    ip route show | sed "s/^/net $1 route4 /"
    ip -6 route show | sed "s/^/net $1 route6 /"
    ip -o link show | grep -e 'master br-mosnet' -e ' br-mosnet:' | sed "s/^/net $1 link /"
}
echo "state $(tr -d '\n' < /run/mosnet/state.json)"
echo "running $(systemctl is-system-running)"
for u in systemd-networkd.service NetworkManager.service network-online.target; do
    echo "$u $(systemctl show -P ActiveEnterTimestampMonotonic $u)"
done | sed 's/^/since /'
systemctl show -p Result -p ActiveState systemd-networkd-wait-online.service |
    sed 's/^/waitonline /'
journalctl -b -o cat -u systemd-networkd-wait-online.service | sed 's/^/waitonline-log /'
ls /run/systemd/network /run/NetworkManager/conf.d /run/network 2>&1 | sed 's/^/files /'
ps -eo pid=,args= | awk '$2 ~ /^@|decoy/' | sed 's/^ */proc /'
snap boot
"""
NETWORKD = r"""
networkctl list --no-legend --no-pager | sed 's/^ */networkctl boot /'
networkctl reload && sleep 3 && snap reload
systemctl restart systemd-networkd && sleep 5 && snap restart
networkctl list --no-legend --no-pager | sed 's/^ */networkctl restart /'
"""
WAIT_LEASE = r"""
echo "lease-wait begin"
sleep 25
echo "state-end $(tr -d '\n' < /run/mosnet/state.json)"
snap late
"""
# Without mosnet's file, networkd takes the uplink: the check above can fail.
NETWORKD_NEGATIVE = r"""
rm /run/systemd/network/00-mosnet.network && networkctl reload && sleep 5
networkctl list --no-legend --no-pager | sed 's/^ */networkctl negative /'
"""
NM = r"""
NetworkManager --print-config | grep -e unmanaged-devices -e '^managed' | sed 's/^/nmconfig /'
nmcli -t -f DEVICE,STATE device | sed 's/^/nm boot /'
systemctl restart NetworkManager && sleep 8 && snap nm-restart
nmcli -t -f DEVICE,STATE device | sed 's/^/nm restart /'
systemctl is-active networking.service | sed 's/^/ifupdown active /'
sed 's/^/ifupdown state /' /run/network/ifstate.eth0
ifup -a; echo "ifupdown ifup-a rc=$?"
snap ifup
tail -n 25 /run/mosnet/boot.log | sed 's/^/bootlog /'
journalctl -b -o cat -u NetworkManager.service | grep -i -e mos -e eth0 | tail -n 20 |
    sed 's/^/nmlog /'
"""
# Runs in systemd-shutdown after its final SIGTERM/SIGKILL round.
FINAL = r"""
for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
    case $cmd in @*|debroot-decoy*) echo "alive ${d#/proc/} $cmd" ;; esac
done
ip -o addr show | sed 's/^/net final addr /'
ip -o link show | grep -e 'master br-mosnet' | sed 's/^/net final link /'
echo "sigterm-lines $(grep -c 'stopping on SIGTERM' /run/mosnet/boot.log)"
"""


@pytest.fixture(scope="session")
def debroot(images: dict[str, Path]) -> Path:
    """The Debian root image (cached under .cache/debroot; cold ~ a few minutes)."""
    out = OUT / "debroot"
    start = time.monotonic()
    res = subprocess.run(
        [str(TOP / "qemu" / "debroot.sh"), str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]
    kver = res.stdout.strip()
    print(f"debroot {kver} ready in {time.monotonic() - start:.0f} s")
    assert images["kernel"].read_bytes() == (out / "vmlinuz").read_bytes(), (
        "out/vmlinuz and the debroot kernel differ: the root's modules would not match"
    )
    return out / "root.img"


def _scripts(tmp_path: Path, **scripts: str) -> tuple[str, ...]:
    args: list[str] = []
    for name, text in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(text)
        args += ["-fw_cfg", f"name=opt/debroot/{name},file={path}"]
    return tuple(args)


def _boot(root: Path, tmp_path: Path, append: str, netns: str, **scripts: str) -> tuple[str, float]:
    spec = VmSpec(
        disk=root, append=f"{COMMON} {QUIET} {append}", net="tap:tap0", netns=netns,
        memory_mb=1024, extra=_scripts(tmp_path, **scripts),
    )  # fmt: skip
    start = time.monotonic()
    with Vm(spec, tmp_path / "console.log") as vm:
        vm.wait_for(r"^DEBROOT: test rc=", SYSTEMD_TIMEOUT)
        vm.wait_for(r"reboot: Power down", 180)
        console = vm.text()
    return console, time.monotonic() - start


def _tagged(console: str, tag: str) -> list[str]:
    return re.findall(rf"^DEBROOT: {re.escape(tag)} (.*?)\r?$", console, re.M)


def _state(console: str, tag: str = "state") -> dict[str, Any]:
    lines = _tagged(console, tag)
    assert lines, f"no {tag} line: mosnet's state.json missing in the real root"
    state: dict[str, Any] = json.loads(lines[0])
    return state


def _snapshot(console: str, phase: str) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """Global addresses (ifname, address), routes and bridge ports at one phase."""
    lines = _tagged(console, f"net {phase}")
    assert lines, f"no network snapshot at {phase}"
    addrs = set()
    for line in lines:
        m = re.match(r"addr \d+: (\S+)\s+inet6? (\S+) .*scope global", line)
        if m:
            addrs.add((m.group(1), m.group(2)))
    routes = {
        re.sub(r" (proto \w+|metric \d+|pref \w+|expires \S+)", "", line.split(" ", 1)[1]).strip()
        for line in lines
        if line.startswith(("route4 ", "route6 "))
    }
    ports = {
        re.sub(r"^\d+: (\S+?)(@\S+)?: .*", r"\1", line[5:])
        for line in lines
        if line.startswith("link ")
    }
    return addrs, routes, ports


def _recorded(st: dict[str, Any]) -> set[tuple[str, str]]:
    net = st["network"]
    assert isinstance(net, dict)
    return {(a["ifname"], a["address"]) for a in net["addresses"] if a["scope"] == "global"}


def _networkctl(console: str, phase: str) -> dict[str, str]:
    """link -> SETUP column of `networkctl list`."""
    rows = [line.split() for line in _tagged(console, f"networkctl {phase}")]
    return {r[1]: r[-1] for r in rows if len(r) >= 5}


def _final_alive(console: str) -> dict[int, str]:
    return {
        int(p): cmd.strip()
        for p, cmd in re.findall(r"^DEBROOT: alive (\d+) (.*?)\r?$", console, re.M)
    }


def _online_after_s(console: str, manager: str) -> float:
    """Seconds from the network manager being up to network-online.target."""
    since = dict(line.split(" ", 1) for line in _tagged(console, "since") if " " in line)
    start, online = int(since.get(manager) or 0), int(since.get("network-online.target") or 0)
    assert start > 0 and online >= start, since
    return (online - start) / 1e6


def _acks(gw: Gateway) -> list[str]:
    text = gw.dnsmasq_log.read_text() if gw.dnsmasq_log.exists() else ""
    return [line for line in text.splitlines() if "DHCPACK" in line and GUEST_MAC in line]


def _common_checks(console: str, port: str) -> dict[str, Any]:
    assert "mosnet: mosnet-init starting as pid 1" in console
    assert "Kernel panic" not in console
    st = _state(console)
    assert st["boot"]["result"] == "switch_root"
    net = st["network"]
    assert isinstance(net, dict) and net["port"] == port and net["bridge"] == "br-mosnet"
    assert "/run/systemd/network/00-mosnet.network" in net["coexist"]
    recorded = _recorded(st)
    assert recorded and all(ifname == port for ifname, _ in recorded)
    addrs, _, ports = _snapshot(console, "boot")
    assert recorded <= addrs, f"addresses lost in systemd's boot: {recorded - addrs}"
    assert "eth0" in ports, "the uplink left br-mosnet"
    daemon = st["daemon"]
    assert isinstance(daemon, dict)
    procs = _tagged(console, "proc")
    assert any(p.split()[0] == str(daemon["pid"]) and "@mosnet-daemon" in p for p in procs), procs
    return st


def _same_network(console: str, before: str, after: str) -> None:
    a_addrs, a_routes, a_ports = _snapshot(console, before)
    b_addrs, b_routes, b_ports = _snapshot(console, after)
    assert b_addrs == a_addrs, f"{after}: addresses changed {a_addrs ^ b_addrs}"
    assert b_routes == a_routes, f"{after}: routes changed {a_routes ^ b_routes}"
    assert b_ports == a_ports, f"{after}: bridge ports changed {a_ports ^ b_ports}"


def test_networkd_dhcp_mode_keeps_address_routes_daemon_and_lease(
    debroot: Path, gateway: Gateway, tmp_path: Path
) -> None:
    console, took = _boot(
        debroot, tmp_path, "systemd.wants=network-online.target", gateway.name,
        setup=SETUP + CATCHALL, test=REPORT + NETWORKD + WAIT_LEASE, final=FINAL,
    )  # fmt: skip
    print(f"networkd DHCP boot: {took:.0f} s")
    st = _common_checks(console, "mos")
    for phase in ("boot", "restart"):
        setup = _networkctl(console, phase)
        for link in ("eth0", "br-mosnet", "mos", "mos-br"):
            assert setup.get(link) == "unmanaged", f"{phase}: networkd took {link}: {setup}"
    _same_network(console, "boot", "reload")
    _same_network(console, "boot", "restart")
    assert any(
        r.startswith(f"default via {gateway.address} dev mos")
        for r in _snapshot(console, "boot")[1]
    )
    # systemd 252's wait-online would wait 2 min for a networkd that manages
    # no link; mosnet's drop-in skips it when every link is mosnet's.
    wait = _online_after_s(console, "systemd-networkd.service")
    assert wait < 30, f"network-online.target came {wait:.0f} s after networkd"
    assert "Result=exec-condition" in _tagged(console, "waitonline")  # skipped by the drop-in
    # The lease renewed while systemd ran: a newer "obtained" and a dnsmasq ACK.
    begin, end = _state(console)["lease"], _state(console, "state-end")["lease"]
    assert end["obtained"] > begin["obtained"], (begin, end)
    assert len(_acks(gateway)) >= 3
    _same_network(console, "boot", "late")
    # Power-off: the daemon outlived systemd-shutdown's final kill, which took
    # the plain decoy from the same root cgroup and spared the '@' one.
    alive = _final_alive(console)
    daemon_pid = st["daemon"]["pid"]
    assert alive.get(daemon_pid, "").startswith("@mosnet-daemon"), alive
    assert any(c.startswith("@mosnet-proxy") for c in alive.values()), alive
    assert any(c.startswith("@debroot-decoy") for c in alive.values()), alive
    assert not any(c.startswith("debroot-decoy") for c in alive.values()), alive
    decoys = [p for p in _tagged(console, "proc") if "debroot-decoy" in p]
    assert len(decoys) == 2, decoys  # both ran before the shutdown
    assert _tagged(console, "sigterm-lines") == ["0"]
    final_addrs, _, final_ports = _snapshot(console, "final")
    assert _recorded(st) <= final_addrs and "eth0" in final_ports


def test_networkd_static_mode_and_negative_control(debroot: Path, tmp_path: Path) -> None:
    gw = Gateway(name=f"mosqd-{os.getpid()}", workdir=tmp_path / "gw")
    gw.start(dhcp=False)
    try:
        addr = f"{gw.net}.50"
        append = f"mosip4={addr},{gw.address},255.255.255.0 nameserver={gw.address}"
        console, took = _boot(
            debroot, tmp_path, append, gw.name,
            setup=SETUP + CATCHALL, test=REPORT + NETWORKD + NETWORKD_NEGATIVE,
        )  # fmt: skip
    finally:
        gw.stop()
    print(f"networkd static boot: {took:.0f} s")
    _common_checks(console, "public")
    addrs, routes, _ = _snapshot(console, "boot")
    assert ("public", f"{addr}/24") in addrs
    assert f"default via {gw.address} dev public" in routes
    for phase in ("boot", "restart"):
        setup = _networkctl(console, phase)
        for link in ("eth0", "br-mosnet", "public", "public-br"):
            assert setup.get(link) == "unmanaged", f"{phase}: networkd took {link}: {setup}"
    _same_network(console, "boot", "reload")
    _same_network(console, "boot", "restart")
    # Without 00-mosnet.network the catch-all wins: networkd takes mosnet's links.
    negative = _networkctl(console, "negative")
    for link in ("br-mosnet", "public"):
        assert negative.get(link) not in (None, "unmanaged"), negative


def test_networkmanager_and_ifupdown_leave_the_links_alone(
    debroot: Path, gateway: Gateway, tmp_path: Path
) -> None:
    append = (
        "systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket "
        "systemd.mask=systemd-networkd-wait-online.service "
        "systemd.wants=NetworkManager.service systemd.wants=networking.service"
    )
    console, took = _boot(
        debroot, tmp_path, append, gateway.name,
        setup=SETUP + IFUPDOWN, test=REPORT + NM, final=FINAL,
    )  # fmt: skip
    print(f"NetworkManager + ifupdown boot: {took:.0f} s")
    _common_checks(console, "mos")
    config = " ".join(_tagged(console, "nmconfig"))
    assert "interface-name:br-mosnet" in config and f"mac:{GUEST_MAC}" in config, config
    for phase in ("boot", "restart"):
        states = dict(line.split(":", 1) for line in _tagged(console, f"nm {phase}") if ":" in line)
        for link in ("eth0", "br-mosnet", "mos", "mos-br"):
            assert states.get(link) == "unmanaged", f"{phase}: NM took {link}: {states}"
    _same_network(console, "boot", "nm-restart")
    # ifupdown: networking.service ran `ifup -a` over an interfaces file that
    # names the uplink; ifstate said it is up already, so eth0 got no address.
    assert _tagged(console, "ifupdown active") == ["active"]
    assert "eth0=mosnet" in _tagged(console, "ifupdown state")
    assert _tagged(console, "ifupdown ifup-a") == ["rc=0"]
    _same_network(console, "boot", "ifup")
    addrs = _snapshot(console, "boot")[0]
    assert not any(ifname == "eth0" for ifname, _ in addrs), addrs
    # networking.service's `ifdown -a` at shutdown left the bridge as it was.
    final_addrs, _, final_ports = _snapshot(console, "final")
    assert _recorded(_state(console)) <= final_addrs and "eth0" in final_ports


def test_snapshot_parser_reads_ip_output() -> None:
    console = "\n".join(
        [
            "DEBROOT: net x addr 4: mos    inet 10.0.0.5/24 scope global dynamic mos\\",
            "DEBROOT: net x addr 4: mos    inet6 fe80::1/64 scope link \\",
            "DEBROOT: net x route4 default via 10.0.0.1 dev mos proto dhcp metric 5",
            "DEBROOT: net x link 2: eth0: <BROADCAST,UP> mtu 1500 master br-mosnet state UP",
        ]
    )
    addrs, routes, ports = _snapshot(console, "x")
    assert addrs == {("mos", "10.0.0.5/24")}
    assert routes == {"default via 10.0.0.1 dev mos"}
    assert ports == {"eth0"}
