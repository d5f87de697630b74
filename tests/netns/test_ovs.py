"""OVS backend on the userspace datapath: daemons, br-mosnet and MAC NAT flows.

    provider netns: opb<pid> bridge 10.X.Y.1/24, nft macfilter (ovs-in-qemu.md §5)
        └─ op<pid> ═veth═ ou<pid> ─┐
    server netns: ovsdb-server + ovs-vswitchd (datapath_type=netdev), br-mosnet
        public (internal, uplink MAC, 10.X.Y.10)
        oc<pid> ═veth═ ocp<pid> in the container netns (own MAC, 10.X.Y.50)

The provider drops frames from a source MAC other than the uplink's, and
unicast to another MAC. Negative control first: a plain NORMAL switch leaks
the container MAC and is dropped; then the MAC NAT flows get it through.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from initramfs import addon, elf
from mosnet.base.names import BRIDGE
from mosnet.ovs import ovslisten, vswitch
from tests.mosprocs import section, stop_all, wait_for
from tests.netns import framecap
from tests.netns.ovslab import (
    CT_MAC,
    REPO,
    UPLINK_MAC,
    Lab,
    run,
    running_lab,
    start_daemons,
    vsctl_get,
)


@pytest.fixture
def lab(tmp_path: pathlib.Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not (vswitch.find_binary("ovs-vsctl") and vswitch.find_binary("ovs-vswitchd")):
        pytest.skip("needs Open vSwitch (ovs-vsctl, ovs-vswitchd)")
    run_dir = tmp_path / "ovs"
    run_dir.mkdir()
    with running_lab(run_dir) as lab:
        yield lab


def test_ovs_daemons_bridge_and_negative_control(lab: Lab) -> None:
    t, gw = lab.tag, f"{lab.prefix}.1"
    db_pid, sw_pid = start_daemons(lab)
    for pid in (db_pid, sw_pid):
        assert pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"@"), pid

    res = vswitch.build_bridge(
        f"ou{t}", "public", UPLINK_MAC, run_dir=lab.run_dir, datapath="netdev"
    )
    assert res.ok, res.errors
    again = vswitch.build_bridge(
        f"ou{t}", "public", UPLINK_MAC, run_dir=lab.run_dir, datapath="netdev"
    )
    assert again.ok, again.errors  # idempotent
    assert vswitch.vsctl(lab.run_dir, "--may-exist", "add-port", BRIDGE, f"oc{t}") is None
    assert vsctl_get(lab, "bridge", BRIDGE, "fail_mode") == "secure"
    assert vsctl_get(lab, "bridge", BRIDGE, "datapath_type") == "netdev"
    assert vsctl_get(lab, "interface", "public", "mac_in_use") == UPLINK_MAC
    ctl = vswitch.paths(lab.run_dir)["controller"]
    assert vsctl_get(lab, "controller", BRIDGE, "target") == f"punix:{ctl}"
    assert vsctl_get(lab, "controller", BRIDGE, "is_connected") == "false"
    # local socket: no echo probes to wake the idle proxy; flood limits on
    assert vsctl_get(lab, "controller", BRIDGE, "inactivity_probe") == "0"
    assert vsctl_get(lab, "controller", BRIDGE, "controller_rate_limit") == "1000"
    assert "Not adding" not in pathlib.Path(vswitch.paths(lab.run_dir)["vswitchd_log"]).read_text()
    assert ovslisten.tcp_listeners(proc=f"/proc/{sw_pid}") == []
    assert ovslisten.tcp_listeners(proc=f"/proc/{db_pid}") == []

    s = lab.server
    run("ip", "-n", s, "addr", "add", f"{lab.prefix}.10/24", "dev", "public")
    run("ip", "-n", s, "link", "set", "public", "up")

    # Negative control: a plain learning switch leaks the container MAC.
    assert vswitch.replace_flows("priority=1,actions=NORMAL\n", lab.run_dir).ok
    assert lab.ping(s, gw), "host -> gateway through OVS"
    assert not lab.ping(lab.container, gw), "container must be filtered without MAC NAT"
    assert lab.counters()["foreign_src"] > 0


# -- the whole OVS path: plan, apply, controller (learning, proxy, restore) ---------

SUPERVISE = """
import sys
from ipaddress import ip_address
from mosnet.base import log
from mosnet.base import netif
from mosnet.daemon import proxyproc
from mosnet.proxy.answers import ProxyConfig
log.setup()
nic, run_dir, host4, host6, gw4, gw6 = sys.argv[1:7]
cfg = ProxyConfig(netif.interface_mac(nic), frozenset({ip_address(host4)}),
                  frozenset({ip_address(host6)}), frozenset({ip_address(gw4), ip_address(gw6)}))
proxyproc.Supervisor(proxyproc.ProxySpec(nic, cfg, "ovs", run_dir)).run()
"""
BRING_UP = """
import os, sys
from mosnet.config import cmdline
from mosnet.base import log
from mosnet.netphase import static
log.setup()
run_dir = os.path.dirname(sys.argv[3])  # resolv.conf goes to <run_dir>/resolv.conf
r = static.bring_up(cmdline.parse(sys.argv[1]).config, run_dir, include=(sys.argv[2],))
print("OK" if r.applied.ok and r.plan.backend == "ovs" else f"FAIL {r.applied.errors}")
"""
L2ASK = str(REPO / "tests" / "netns" / "l2ask.py")


def _ipv6_lab(lab: Lab) -> str:
    """IPv6 on in provider and container (DAD off); the fixture turned it off."""
    net6 = f"fd00:98:{int(lab.tag) % 250:x}"
    for ns in (lab.provider, lab.container, lab.server):
        for key in ("all", "default"):
            lab.ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=0")
            lab.ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")
    t = lab.tag
    run("ip", "-n", lab.provider, "addr", "add", f"{net6}::1/64", "dev", f"opb{t}", "nodad")
    c = lab.container
    run("ip", "-n", c, "addr", "add", f"{net6}::50/64", "dev", f"ocp{t}", "nodad")
    run("ip", "-n", c, "route", "add", "default", "via", f"{lab.prefix}.1")
    run("ip", "-n", c, "-6", "route", "add", "default", "via", f"{net6}::1")
    return net6


def _ofctl(lab: Lab, *args: str) -> str:
    return run("ovs-ofctl", args[0], f"unix:{vswitch.paths(lab.run_dir)['mgmt']}", *args[1:])


def _connected(log: pathlib.Path, times: int, timeout: float = 20.0) -> bool:
    """The controller logged its ``times``-th connection (vswitchd's is_connected
    stays false for connections accepted on a passive punix: target)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.read_text().count("OpenFlow controller connected") >= times:
            return True
        time.sleep(0.2)
    return False


def _proxy_child(supervisor_pid: int) -> int:
    children = pathlib.Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children")
    found = [int(p) for p in children.read_text().split()]
    assert len(found) == 1, found
    return found[0]


def _answers(lab: Lab, net6: str, *targets: str) -> dict[str, str]:
    out = {}
    for t in targets:
        src = f"{net6}::7" if ":" in t else f"{lab.prefix}.7"
        text = lab.ns(lab.provider, sys.executable, L2ASK, f"opb{lab.tag}", src, t)
        out[t] = text.split(maxsplit=1)[1].strip()
    return out


def _start_supervisor(lab: Lab, net6: str, tmp: pathlib.Path) -> subprocess.Popen[str]:
    addrs = [f"{lab.prefix}.10", f"{net6}::10", f"{lab.prefix}.1", f"{net6}::1"]
    argv = ["ip", "netns", "exec", lab.server, sys.executable, "-c", SUPERVISE, f"ou{lab.tag}",
            lab.run_dir, *addrs]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(argv, env=env, stderr=(tmp / "proxy.log").open("w"), text=True)


def test_ovs_backend_end_to_end(lab: Lab, tmp_path: pathlib.Path) -> None:
    """static.bring_up with mosbridge=ovs, then the controller: guests are learned,
    IPv4 and IPv6 pass the provider's MAC filter both ways, the proxy answers for
    host and guest addresses only, and a killed controller comes back with the
    flows it needs."""
    t, gw = lab.tag, f"{lab.prefix}.1"
    net6 = _ipv6_lab(lab)
    env = dict(os.environ, PYTHONPATH=str(REPO), MOSNET_OVS_DATAPATH="netdev",
               MOSNET_OVS_RUN_DIR=lab.run_dir)  # fmt: skip
    cmd = f"mosip4={lab.prefix}.10,{gw},255.255.255.0 mosip6={net6}::10/64,{net6}::1 mosbridge=ovs"
    up = subprocess.run(
        ["ip", "netns", "exec", lab.server, sys.executable, "-c", BRING_UP, cmd, f"ou{t}",
         str(tmp_path / "resolv.conf")], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert up.stdout.strip() == "OK", up.stdout + up.stderr
    assert vswitch.vsctl(lab.run_dir, "--may-exist", "add-port", BRIDGE, f"oc{t}") is None
    assert vsctl_get(lab, "interface", f"ou{t}", "ofport") == "1"
    assert vsctl_get(lab, "interface", "public", "ofport") == "2"
    assert lab.ping(lab.server, gw), "host -> gateway on the base flows alone"

    sup = _start_supervisor(lab, net6, tmp_path)
    try:
        assert _connected(tmp_path / "proxy.log", 1), (tmp_path / "proxy.log").read_text()
        before = lab.counters()
        with framecap.capture(lab.provider, f"op{t}") as frames:
            assert lab.ping(lab.container, gw), "container -> gateway (IPv4)"
            assert lab.ping(lab.container, f"{net6}::1"), "container -> gateway (IPv6)"
            lab.ns(lab.provider, "ip", "neigh", "flush", "all")
            assert lab.ping(lab.provider, f"{lab.prefix}.50"), "gateway -> container (IPv4)"
            assert lab.ping(lab.provider, f"{net6}::50"), "gateway -> container (IPv6)"
            answers = _answers(
                lab, net6, f"{lab.prefix}.50", f"{net6}::50", f"{lab.prefix}.10",
                f"{net6}::10", gw, f"{net6}::1", f"{lab.prefix}.99", f"{net6}::99",
            )  # fmt: skip
        assert frames and not framecap.leaks(frames, CT_MAC), "an internal MAC left the uplink"
        after = lab.counters()
        assert after["foreign_src"] == before["foreign_src"], (before, after)
        assert after["foreign_dst"] == before["foreign_dst"], (before, after)
        for mine in (f"{lab.prefix}.50", f"{net6}::50", f"{lab.prefix}.10", f"{net6}::10"):
            assert set(answers[mine].split()) == {UPLINK_MAC}, (mine, answers)
        for silent in (gw, f"{net6}::1", f"{lab.prefix}.99", f"{net6}::99"):
            assert answers[silent] == "-", (silent, answers)
        neigh = lab.ns(lab.provider, "ip", "neigh", "show", "nud", "reachable")
        assert UPLINK_MAC in neigh and CT_MAC not in neigh, neigh

        # Restore: flush the table, kill the controller; the supervisor's new one
        # puts the base flows back and relearns the guest.
        _ofctl(lab, "del-flows")
        assert not lab.ping(lab.container, gw), "an empty secure bridge forwards nothing"
        os.kill(_proxy_child(sup.pid), signal.SIGKILL)
        import time

        assert _connected(tmp_path / "proxy.log", 2), (tmp_path / "proxy.log").read_text()
        time.sleep(0.5)
        flows = _ofctl(lab, "dump-flows")
        assert flows.count("cookie=0x6d6f736e01000000") == 7, flows
        assert lab.ping(lab.container, gw), "container -> gateway after the restart"
        assert lab.ping(lab.provider, f"{lab.prefix}.50"), "gateway -> container after it"
        assert "cookie=0x6d6f736e02000000" in _ofctl(lab, "dump-flows")
    finally:
        sup.terminate()
        sup.wait(timeout=10)
    log = (tmp_path / "proxy.log").read_text()
    assert "ended (signal 9)" in log and "guest address" in log, log


# -- the watcher keeps the OVS daemons alive (issue 13 §6) ----------------------------

WATCHED = """
import sys, time
from ipaddress import ip_address
from mosnet.daemon import mainloop
from mosnet.base import log
from mosnet.base import netif
from mosnet.ovs import ofcontrol
from mosnet.ovs import ofsock
from mosnet.ovs import vswitch
from mosnet.proxy.answers import ProxyConfig
from mosnet.daemon.proxyproc import ProxySpec
nic, ct, run_dir, state_dir, runtime, manifest, host4, gw4 = sys.argv[1:9]
log.setup()
log.add_file(state_dir + "/boot.log")
r = vswitch.start(run_dir, datapath="netdev", runtime_root=runtime, manifest=manifest)
assert r.ok, r.errors
mac = netif.interface_mac(nic)
assert vswitch.build_bridge(nic, "public", mac.hex(":"), run_dir=run_dir, datapath="netdev").ok
assert vswitch.vsctl(run_dir, "--may-exist", "add-port", "br-mosnet", ct) is None
ofsock.install(vswitch.paths(run_dir)["controller"], ofcontrol.restore_messages())
cfg = ProxyConfig(mac, frozenset({ip_address(host4)}), frozenset(), frozenset({ip_address(gw4)}))
duties = mainloop.Duties(proxy=ProxySpec(nic, cfg, "ovs", run_dir))
handle = mainloop.spawn(duties, run_dir=state_dir, ovs_runtime=runtime)
print("SPAWNED", handle.pid, flush=True)
time.sleep(3600)  # PID 1's part: hold the hand-over pipe
"""


def _host_ovs_manifest(tmp: pathlib.Path) -> pathlib.Path:
    """The add-on's runtime manifest, made for the host's own OVS packages."""
    closure = elf.resolve([pathlib.Path(p) for p in addon.DAEMONS])
    have = {f.image_path for f in closure.files} | {x.image_path for x in closure.links}
    path = tmp / "ovs-runtime.txt"
    path.write_text(addon.runtime_manifest(pathlib.Path("/"), set(), have))
    return path


def _daemon_view(lab: Lab, name: str) -> tuple[int, bytes, str]:
    """(pid, cmdline, exe) of ``name`` by its pidfile."""
    key = "ovsdb_pid" if name == "ovsdb-server" else "vswitchd_pid"
    pid = int(pathlib.Path(vswitch.paths(lab.run_dir)[key]).read_text())
    return pid, pathlib.Path(f"/proc/{pid}/cmdline").read_bytes(), os.readlink(f"/proc/{pid}/exe")


def _restarted(lab: Lab, name: str, old: int) -> tuple[int, bytes, str]:
    def again() -> tuple[int, bytes, str] | None:
        try:
            got = _daemon_view(lab, name)
        except (OSError, ValueError):
            return None
        return got if got[0] != old else None

    found: tuple[int, bytes, str] = wait_for(again, 30)
    return found


def test_the_watcher_restarts_killed_ovs_daemons_from_the_runtime_copy(
    lab: Lab, tmp_path: pathlib.Path
) -> None:
    """ovs-vswitchd and ovsdb-server SIGKILLed: the watcher starts them again with
    the same command line, from the copy under the runtime dir (the real loader
    path); the proxy reconnects, the base flows and MAC NAT come back."""
    t, gw = lab.tag, f"{lab.prefix}.1"
    state_dir, runtime = tmp_path / "run", tmp_path / "rt"
    state_dir.mkdir()
    manifest = _host_ovs_manifest(tmp_path)
    args = [f"ou{t}", f"oc{t}", lab.run_dir, str(state_dir), str(runtime), str(manifest),
            f"{lab.prefix}.10", gw]  # fmt: skip
    argv = ["ip", "netns", "exec", lab.server, sys.executable, "-c", WATCHED, *args]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    err = (tmp_path / "helper.err").open("w")
    helper = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    boot_log = state_dir / "boot.log"
    try:
        assert helper.stdout is not None
        assert helper.stdout.readline().startswith("SPAWNED"), (tmp_path / "helper.err").read_text()
        wait_for(lambda: "OpenFlow controller connected" in boot_log.read_text())
        assert lab.ping(lab.container, gw), "container -> gateway through the MAC NAT flows"
        sw_pid, sw_cmd, sw_exe = _daemon_view(lab, "ovs-vswitchd")
        assert sw_exe == str(runtime / "ld.so") and sw_cmd.startswith(b"@ovs-vswitchd\0")

        os.kill(sw_pid, signal.SIGKILL)
        new_pid, new_cmd, new_exe = _restarted(lab, "ovs-vswitchd", sw_pid)
        assert (new_cmd, new_exe) == (sw_cmd, sw_exe)  # the same arguments and database
        wait_for(lambda: boot_log.read_text().count("OpenFlow controller connected") >= 2, 30)
        wait_for(lambda: _ofctl(lab, "dump-flows").count("cookie=0x6d6f736e01000000") == 7, 10)
        assert lab.ping(lab.container, gw), "container -> gateway after ovs-vswitchd's restart"

        db_pid, db_cmd, db_exe = _daemon_view(lab, "ovsdb-server")
        os.kill(db_pid, signal.SIGKILL)
        _, again_cmd, again_exe = _restarted(lab, "ovsdb-server", db_pid)
        assert (again_cmd, again_exe) == (db_cmd, db_exe) and db_exe == str(runtime / "ld.so")
        assert vsctl_get(lab, "bridge", BRIDGE, "fail_mode") == "secure"  # the same database
        assert lab.ping(lab.container, gw), "container -> gateway after ovsdb-server's restart"
        restarts = section(state_dir, "watch")["restarts"]
        assert restarts == {"@mosnet-daemon": 0, "@ovsdb-server": 1, "@ovs-vswitchd": 1}
        assert section(state_dir, "watch")["ovs_runtime"]["bytes"] > 5_000_000
    finally:
        stop_all(state_dir)
        helper.kill()
        helper.wait(timeout=10)
