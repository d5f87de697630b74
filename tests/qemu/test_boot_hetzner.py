"""The Hetzner case end to end, both bridge backends, static and DHCP mode (issue 6 §5-6).

The tap-side namespace plays a provider that filters MACs: it drops every
frame from the guest whose source MAC is not the guest NIC's and every
unicast towards another MAC. In the real root (after switch_root), a
container-like namespace with a MAC of its own hangs off br-mosnet, with
IPv4 and IPv6. Checked from the provider side:

* container <-> gateway both ways over IPv4 and IPv6, drop counters at 0,
  and the gateway's neighbour table holds only the NIC MAC;
* ARP and NS for the host and container addresses are answered (with the NIC
  MAC), those for the gateway and for unconfigured addresses are not;
* the proxy, killed (on OVS after the flow table was emptied), is restarted
  by the daemon and the flows and the container's connectivity come back;
* negative control: with MAC NAT removed the filter drops the container.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qemu.topology import Gateway
from qemu.vm import GUEST_MAC, OUT, Vm
from tests.qemu import provider
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec

NET6 = "fd00:213:7"
CT4, CT6 = ".60", "::60"
L2ASK = str(Path(__file__).resolve().parents[1] / "netns" / "l2ask.py")
CASES = [("linux", "static"), ("ovs", "static"), ("linux", "dhcp"), ("ovs", "dhcp")]


def _ask(gw: Gateway, *targets: str) -> dict[str, set[str]]:
    out = {}
    for t in targets:
        src = f"{NET6}::7" if ":" in t else f"{gw.net}.7"
        env = dict(os.environ, PYTHONPATH=str(Path(L2ASK).parents[2]))
        argv = ["ip", "netns", "exec", gw.name, sys.executable, L2ASK, "br0", src, t]
        line = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20).stdout
        macs = line.split()[1:]
        out[t] = set() if macs == ["-"] else set(macs)
    return out


def _gateway(tmp_path: Path, mode: str) -> Gateway:
    gw = Gateway(name=f"mosqh-{os.getpid()}-{mode}", workdir=tmp_path / "gw")
    gw.start(dhcp=mode == "dhcp")
    gw.run("ip", "addr", "add", f"{NET6}::1/64", "dev", "br0", "nodad")
    provider.filter_macs(gw, GUEST_MAC)
    return gw


def _cmdline(gw: Gateway, backend: str, mode: str) -> str:
    ct = f"{gw.net}{CT4}/24,{gw.address},{NET6}{CT6}/64,{NET6}::1"
    net = ""
    if mode == "static":
        net = f"mosip4={gw.net}.52,{gw.address},255.255.255.0 mosip6={NET6}::52/64,{NET6}::1 "
    return f"root=/dev/vda rw {net}mosbridge={backend} mostest.container={ct} mostest.handshake"


@pytest.mark.parametrize(("backend", "mode"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_container_behind_mac_filter(
    images: dict[str, Path], tmp_path: Path, backend: str, mode: str
) -> None:
    initrd = OUT / "mosnet-initramfs-ovs.img" if backend == "ovs" else images["initrd"]
    if not initrd.exists():
        pytest.fail(f"{initrd} missing: run ./build.sh first")
    gw = _gateway(tmp_path, mode)
    spec = boot_spec({**images, "initrd": initrd}, _cmdline(gw, backend, mode),
                     net="tap:tap0", netns=gw.name)  # fmt: skip
    ct4, ct6 = f"{gw.net}{CT4}", f"{NET6}{CT6}"
    try:
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: host turn: MAC NAT on", BOOT_TIMEOUT)
            host4 = f"{gw.net}.52" if mode == "static" else _leased(gw)
            pings = {a: provider.ping(gw, a) for a in (ct4, ct6, host4)}
            answers = _ask(gw, ct4, ct6, host4, gw.address, f"{NET6}::1", f"{gw.net}.99",
                           f"{NET6}::99")  # fmt: skip
            neigh, with_nat = provider.neighbours(gw), provider.drops(gw)
            vm.send("go\n")
            vm.wait_for(r"^ROOT: host turn: after proxy restart", 120)
            ping_back = provider.ping(gw, ct4)
            vm.send("go\n")
            vm.wait_for(r"^ROOT: done", 120)
            without_nat, console = provider.drops(gw), vm.text()
    finally:
        gw.stop()
    assert f"ROOT: container on br-mosnet ({backend})" in console
    for target in (gw.address, f"{NET6}::1"):
        assert f"ROOT: container ping {target} (MAC NAT) ok" in console, target
        assert f"ROOT: container ping {target} (after proxy restart) ok" in console, target
    assert with_nat == {"foreign source MAC": 0, "unicast to a foreign MAC": 0}, with_nat
    assert all(pings.values()), pings
    for mine in (ct4, ct6, host4):
        assert answers[mine] == {GUEST_MAC}, (mine, answers)
    for silent in (gw.address, f"{NET6}::1", f"{gw.net}.99", f"{NET6}::99"):
        assert answers[silent] == set(), (silent, answers)
    assert set(neigh.values()) <= {GUEST_MAC, ""} and neigh.get(ct4) == GUEST_MAC, neigh
    assert re.search(r"ROOT: proxy restarted as \d+", console), console
    if backend == "ovs":
        assert "ROOT: ovs-vsctl:" in console and "fail_mode: secure" in console
        assert "ROOT: base flows 7" in console and "ROOT: base flows after restart 7" in console
    assert ping_back, "gateway -> container after the proxy restart"
    # Negative control: without MAC NAT the same container is filtered out.
    assert "ROOT: MAC NAT removed" in console
    assert f"ROOT: container ping {gw.address} (no MAC NAT) FAILED" in console
    assert without_nat["foreign source MAC"] > 0, without_nat


def _leased(gw: Gateway) -> str:
    text = (gw.workdir / "leases").read_text()
    found = [f.split()[2] for f in text.splitlines() if GUEST_MAC in f]
    assert found, text
    return found[-1]
