"""PID 1's state.json and ``mosnet status --check`` against a real kernel.

A namespace with a veth ``mos`` carrying an address and a default route, and a
process titled ``@mosnet-daemon``: handoff.record snapshots them over netlink,
``mosnet status`` compares with what the kernel has later.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
N = os.getpid() % 200 + 20
ADDR, GW = f"10.94.{N}.5", f"10.94.{N}.1"

RECORD = """
import sys
from init import handoff
facts = handoff.NetFacts("static", "nic0", "named on the command line", None, "none", "mos")
boot = handoff.boot_section({"network": 0.5}, "switch_root", "/dev/vda", None)
services = {"daemon": {"pid": int(sys.argv[2])}, "proxy": None}
handoff.record(sys.argv[1], boot, facts, None, None, services)
"""


def _ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(TOP))
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30, env=env
    )


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    ns = f"msst{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for argv in (
            ["link", "add", "mos", "type", "veth", "peer", "nic0"],
            ["link", "set", "mos", "up"], ["link", "set", "nic0", "up"],
            ["addr", "add", f"{ADDR}/24", "dev", "mos"],
            ["route", "add", "default", "via", GW, "dev", "mos", "onlink"],
        ):  # fmt: skip
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _status(ns: str, run_dir: Path) -> tuple[int, dict[str, bool], str]:
    out = _ns(ns, sys.executable, "-m", "mosnet", "status", "--check", "--json",
              "--run-dir", str(run_dir))  # fmt: skip
    data = json.loads(out.stdout)
    return out.returncode, {c["name"]: c["ok"] for c in data["checks"]}, out.stderr


def test_status_sees_what_the_kernel_lost(netns: str, tmp_path: Path) -> None:
    fake = subprocess.Popen(["bash", "-c", "exec -a @mosnet-daemon sleep 300"])
    try:
        rec = _ns(netns, sys.executable, "-c", RECORD, str(tmp_path), str(fake.pid))
        assert rec.returncode == 0, rec.stderr
        st = json.loads((tmp_path / "state.json").read_text())
        assert {"ifname": "mos", "address": f"{ADDR}/24", "scope": "global"} in st["network"][
            "addresses"
        ]
        assert {"dst": "default", "dev": "mos", "via": GW} in st["network"]["routes"]
        code, checks, err = _status(netns, tmp_path)
        assert code == 0 and all(checks.values()), (checks, err)
        human = _ns(netns, sys.executable, "-m", "mosnet", "status", "--run-dir", str(tmp_path))
        assert f"{ADDR}/24 (mos)" in human.stdout and "default via " + GW in human.stdout
        subprocess.run(["ip", "-n", netns, "addr", "del", f"{ADDR}/24", "dev", "mos"], check=True)
        code, checks, _ = _status(netns, tmp_path)
        assert code == 1 and not checks["addresses"] and not checks["default route"]
        assert checks["daemon"]
    finally:
        fake.send_signal(signal.SIGKILL)
        fake.wait()
    code, checks, _ = _status(netns, tmp_path)
    assert code == 1 and not checks["daemon"]
