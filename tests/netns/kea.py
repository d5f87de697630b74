"""ISC Kea (kea-dhcp4) in a server netns, mosnet's client in a client netns.

``kea_net`` builds the two namespaces joined by a veth pair; ``KeaNet.start_kea``
writes a JSON config and runs ``kea-dhcp4 -c cfg`` in the foreground with its
log in a file, ``stop_kea`` stops it by PID. Names carry the test pid and a
counter so parallel runs do not collide; everything is torn down by PID and
``ip netns del``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

KEA = "/usr/sbin/kea-dhcp4"
REPO = pathlib.Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable
_seq = itertools.count()

# Records every UDP packet to port 67 seen on the server's veth:
# "<ip src> <ip dst> <DHCP msg type> <ciaddr> <requested ip or ->"
CAPTURE = textwrap.dedent("""
    import socket, struct, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    s.bind((sys.argv[1], 0x0800))
    out = open(sys.argv[2], "w", buffering=1)
    while True:
        p = s.recv(2048)
        ihl = (p[0] & 15) * 4
        if p[9] != 17 or struct.unpack_from("!H", p, ihl + 2)[0] != 67:
            continue
        d = p[ihl + 8:]
        i, mtype, req = 240, None, "-"
        while i + 1 < len(d) and d[i] != 255:
            if d[i] == 0: i += 1; continue
            if d[i] == 53: mtype = d[i + 2]
            if d[i] == 50: req = socket.inet_ntoa(d[i + 2:i + 6])
            i += 2 + d[i + 1]
        out.write(f"{socket.inet_ntoa(p[12:16])} {socket.inet_ntoa(p[16:20])} {mtype} "
                  f"{socket.inet_ntoa(d[12:16])} {req}\\n")
""")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def stop_pid(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s; only ever this one PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class KeaNet:
    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    prefix: str  # "10.93.X": the pool's /24, the server holds .1
    tmp: pathlib.Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kea: subprocess.Popen[bytes] | None = None
    kea_runs: int = 0

    @property
    def kea_log(self) -> pathlib.Path:
        return self.tmp / "kea.log"

    def popen_in(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``ns``; teardown stops it by PID."""
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], env=env, **kw
        )
        self.procs.append(proc)
        return proc

    def run_in(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        res = self.run_in(self.client_ns, ["ip", "-j", *args], 5)
        parsed: list[dict[str, Any]] = json.loads(res.stdout or "[]")
        return parsed

    def client_addrs(self) -> list[dict[str, Any]]:
        links = self.ip_json("-4", "addr", "show", "dev", self.client_if)
        return list(links[0]["addr_info"]) if links else []

    def client_routes(self) -> list[dict[str, Any]]:
        return self.ip_json("-4", "route", "show", "dev", self.client_if)

    def mac(self) -> str:
        res = self.run_in(self.client_ns, ["cat", f"/sys/class/net/{self.client_if}/address"], 5)
        return res.stdout.strip()

    def log_text(self) -> str:
        return self.kea_log.read_text(errors="replace") if self.kea_log.exists() else ""

    def start_capture(self) -> pathlib.Path:
        path = self.tmp / "capture.txt"
        self.popen_in(
            self.server_ns,
            [PY, "-c", CAPTURE, self.server_if, str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)  # let the capture socket bind
        return path

    def config(
        self,
        *,
        valid: int = 120,
        renew: int | None = None,
        rebind: int | None = None,
        pool: str | None = None,
        options: list[dict[str, Any]] | None = None,
        authoritative: bool = False,
        subnet: str | None = None,
    ) -> dict[str, Any]:
        """``subnet`` e.g. "10.93.X.100/32": Kea derives option 1 from the subnet
        (option-data cannot override it), so a /32 lease needs a /32 subnet."""
        sub: dict[str, Any] = {
            "id": 1,
            "subnet": subnet or f"{self.prefix}.0/24",
            "interface": self.server_if,
            "pools": [{"pool": pool or f"{self.prefix}.100 - {self.prefix}.150"}],
            "option-data": options or [],
        }
        timers = {"valid-lifetime": valid}
        if renew is not None:
            timers["renew-timer"] = renew
        if rebind is not None:
            timers["rebind-timer"] = rebind
        return {
            "Dhcp4": {
                "interfaces-config": {"interfaces": [self.server_if], "dhcp-socket-type": "raw"},
                "lease-database": {"type": "memfile", "persist": False},
                "authoritative": authoritative,
                # the client id is our MAC anyway; match on it so a restarted Kea behaves alike
                "match-client-id": True,
                "decline-probation-period": 3600,
                **timers,
                "subnet4": [sub],
                "loggers": [
                    {
                        "name": "kea-dhcp4",
                        "severity": "DEBUG",
                        "debuglevel": 55,
                        "output_options": [{"output": str(self.kea_log), "flush": True}],
                    }
                ],
            }
        }

    def start_kea(self, cfg: dict[str, Any]) -> subprocess.Popen[bytes]:
        """Run kea-dhcp4 in the foreground; return once it listens."""
        if self.kea is not None:
            self.stop_kea()
        self.kea_runs += 1
        path = self.tmp / f"kea-{self.kea_runs}.json"
        path.write_text(json.dumps(cfg, indent=1))
        mark = len(self.log_text())
        # pid and lock files go to our tmp dir, not /run/kea: several Keas may run at once
        env = {"KEA_PIDFILE_DIR": str(self.tmp), "KEA_LOCKFILE_DIR": str(self.tmp)}
        proc = self.popen_in(
            self.server_ns,
            ["env", *(f"{k}={v}" for k, v in env.items()), KEA, "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        end = time.monotonic() + 10
        while "DHCP4_STARTED" not in self.log_text()[mark:]:
            if proc.poll() is not None or time.monotonic() > end:
                stop_pid(proc)
                err = proc.stderr.read() if proc.stderr else b""
                raise RuntimeError(f"kea-dhcp4 did not start: {err!r}\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        self.kea = proc
        return proc

    def stop_kea(self) -> None:
        if self.kea is not None:
            stop_pid(self.kea)
            self.kea = None


@contextlib.contextmanager
def kea_net(tmp: pathlib.Path, *, router_prefix: str | None = None) -> Iterator[KeaNet]:
    """Two namespaces and a veth pair; the server also holds ``router_prefix``.1/32
    (a gateway outside the client's subnet, reachable on-link, Hetzner-style)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not shutil.which("ip") or not os.path.exists(KEA):
        pytest.skip("needs iproute2 and kea-dhcp4 (apt-get install kea-dhcp4-server)")
    pid, n = os.getpid(), next(_seq)
    tag = f"{pid}{n}"
    net = KeaNet(
        f"mosk-s{tag}",
        f"mosk-c{tag}",
        f"ks{tag}"[:15],
        f"kc{tag}"[:15],
        f"10.93.{(pid + n) % 250 + 1}",
        tmp,
    )
    try:
        _ip("netns", "add", net.server_ns)
        _ip("netns", "add", net.client_ns)
        _ip("link", "add", net.client_if, "type", "veth", "peer", "name", net.server_if)
        _ip("link", "set", net.server_if, "netns", net.server_ns)
        _ip("link", "set", net.client_if, "netns", net.client_ns)
        _ip("-n", net.server_ns, "addr", "add", f"{net.prefix}.1/24", "dev", net.server_if)
        if router_prefix:
            _ip("-n", net.server_ns, "addr", "add", f"{router_prefix}.1/32", "dev", net.server_if)
        for ns, dev in ((net.server_ns, net.server_if), (net.client_ns, net.client_if)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        yield net
    finally:
        net.stop_kea()
        for proc in reversed(net.procs):
            stop_pid(proc)
        for ns in (net.client_ns, net.server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def hex_routes(routes: list[tuple[str, str]]) -> str:
    """Option 121 payload (RFC 3442) as hex, for a ``csv-format: false`` option."""
    out = bytearray()
    for dst, gw in routes:
        net, width = dst.split("/")
        octets = bytes(int(x) for x in net.split("."))[: (int(width) + 7) // 8]
        out += bytes([int(width)]) + octets + bytes(int(x) for x in gw.split("."))
    return out.hex()


# The client under test. argv: ifname, mode ("acquire" | "daemon"), JSON config.
# "acquire": one lease, applied, printed as JSON. "daemon": run_forever with
# apply/remove hooks until SIGTERM; the log (DEBUG) is the test's evidence.
CLIENT = textwrap.dedent("""
    import json, logging, signal, sys, threading
    from mosnet.base import log
    from mosnet.dhcp4 import Client, ClientConfig, Config
    from mosnet.topology.netapply import apply_lease, remove_lease

    ifname, mode, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    log.setup(level=logging.DEBUG)
    conf = ClientConfig(machine=Config(**cfg.get("machine", {})),
                        probe_count=cfg.get("probe_count", 1),
                        probe_wait=cfg.get("probe_wait", 0.3), poll=0.2)
    client = Client(ifname, config=conf)
    if mode == "acquire":
        lease = client.acquire(timeout=cfg.get("timeout", 15.0))
        if lease is None:
            print(json.dumps({"lease": None})); sys.exit(3)
        apply_lease(lease, ifname, client.clock())
        print(json.dumps({"lease": lease.to_json(), "state": client.machine.state.value}))
        sys.exit(0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    def on_bind(lease):
        apply_lease(lease, ifname, client.clock())
        print("HOOK bind", lease.address, flush=True)
    def on_renew(lease):
        apply_lease(lease, ifname, client.clock())
        print("HOOK renew", lease.address, flush=True)
    def on_expire(lease):
        remove_lease(lease, ifname)
        print("HOOK removed", lease.address, flush=True)
    client.run_forever(on_bind, on_expire, stop.is_set, on_renew)
    print("HOOK stopped", client.machine.state.value, flush=True)
""")


def run_client(net: KeaNet, cfg: dict[str, Any], timeout: float = 40) -> tuple[dict[str, Any], str]:
    res = net.run_in(
        net.client_ns,
        [PY, "-c", CLIENT, net.client_if, "acquire", json.dumps(cfg)],
        timeout=timeout,
    )
    assert res.returncode == 0, res.stdout + res.stderr[-4000:] + net.log_text()[-4000:]
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out, res.stderr


def start_daemon(net: KeaNet, cfg: dict[str, Any]) -> tuple[subprocess.Popen[bytes], pathlib.Path]:
    path = net.tmp / "client.log"
    fh = path.open("wb")
    proc = net.popen_in(
        net.client_ns,
        [PY, "-u", "-c", CLIENT, net.client_if, "daemon", json.dumps(cfg)],
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    fh.close()
    return proc, path


def wait_for(pred: Any, timeout: float, what: str, dump: Any = None) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            extra = dump() if dump else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{extra}")
        time.sleep(0.1)
