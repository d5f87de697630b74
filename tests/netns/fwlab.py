"""The firewall lab shared by tests/netns/test_firewall.py: four namespaces,
small tagged servers, and the script that applies a command line's firewall
and NAT inside the host namespace (see that module's docstring for the map).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

REPO = pathlib.Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable
NFT = next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)

SERVER = textwrap.dedent("""
    import socket, sys, threading
    tag = sys.argv[1]
    def tcp(port):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(16)
        while True:
            c, a = s.accept()
            c.sendall(f"{tag} {a[0].removeprefix('::ffff:')}\\n".encode()); c.close()
    def udp(port):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        while True:
            d, a = s.recvfrom(2048)
            s.sendto(f"{tag} {a[0].removeprefix('::ffff:')}\\n".encode(), a)
    for spec in sys.argv[2:]:
        proto, port = spec.split(":")
        threading.Thread(target=tcp if proto == "tcp" else udp, args=(int(port),)).start()
    print("ready", flush=True)
""")

PROBE = textwrap.dedent("""
    import json, socket, sys
    proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind); s.settimeout(2.0)
    try:
        if proto == "tcp":
            s.connect((host, port)); out = s.recv(200).decode().strip()
        else:
            s.sendto(b"hi", (host, port)); out = s.recv(200).decode().strip()
        print(json.dumps({"ok": True, "reply": out}))
    except socket.timeout:
        print(json.dumps({"ok": False, "err": "timeout"}))
    except OSError as e:
        print(json.dumps({"ok": False, "err": e.__class__.__name__}))
""")

APPLY = textwrap.dedent("""
    import dataclasses, json, logging, sys
    from mosnet.nft import firewall
    from mosnet.base import log
    from mosnet.nft import nftrules
    from mosnet.config.cmdline import parse
    log.setup(level=logging.INFO)
    if len(sys.argv) > 2 and sys.argv[2] == "garbage":
        nftrules.render = lambda *a, **k: "table inet mosnet-firewall { chain input { nonsense\\n"
    res = firewall.load(parse(sys.argv[1]).config)
    print(json.dumps(dataclasses.asdict(res)))
""")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Lab:
    x: int
    tag: str
    tmp: pathlib.Path
    client: str = ""
    host: str = ""
    backend: str = ""
    peer: str = ""
    uplink: str = ""
    client_if: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(
        self, ns: str, argv: list[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def popen(self, ns: str, argv: list[str]) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def serve(self, ns: str, tag: str, *specs: str) -> None:
        proc = self.popen(ns, [PY, "-c", SERVER, tag, *specs])
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"

    def probe(self, ns: str, proto: str, host: str, port: int) -> dict[str, object]:
        res = self.run(ns, [PY, "-c", PROBE, proto, host, str(port)])
        out: dict[str, object] = json.loads(res.stdout)
        return out

    def apply(self, cmdline: str, *extra: str) -> dict[str, object]:
        res = self.run(self.host, [PY, "-c", APPLY, cmdline, *extra])
        assert res.returncode == 0, res.stderr
        out: dict[str, object] = json.loads(res.stdout)
        out["log"] = res.stderr
        return out

    def nft(self, *args: str) -> str:
        assert NFT is not None
        res = self.run(self.host, [NFT, *args])
        assert res.returncode == 0, res.stderr
        return res.stdout

    def v4(self, net: int, host: int) -> str:
        return f"10.{net}.{self.x}.{host}"

    def v6(self, host: int) -> str:
        return f"fd00:81:{self.x:x}::{host}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _veth(lab: Lab, a: str, ns_a: str, b: str, ns_b: str) -> None:
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    ip("link", "set", a, "netns", ns_a)
    ip("link", "set", b, "netns", ns_b)


def build(lab: Lab) -> None:
    t = lab.tag
    lab.client, lab.host, lab.backend, lab.peer = (f"mosfw-{r}{t}" for r in "chbp")
    for ns in (lab.client, lab.host, lab.backend, lab.peer):
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    lab.uplink, lab.client_if = f"mfu{t}", f"mfc{t}"
    _veth(lab, lab.client_if, lab.client, lab.uplink, lab.host)
    _veth(lab, f"mfbe{t}", lab.backend, f"mfb{t}", lab.host)
    _veth(lab, f"mfpe{t}", lab.peer, f"mfp{t}", lab.host)
    br = f"mfbr{t}"
    ip("-n", lab.host, "link", "add", br, "type", "bridge")
    for port in (f"mfb{t}", f"mfp{t}"):
        ip("-n", lab.host, "link", "set", port, "master", br)
        ip("-n", lab.host, "link", "set", port, "up")
    addrs = [
        (lab.client, lab.client_if, lab.v4(81, 1) + "/24", lab.v6(1) + "/64"),
        (lab.host, lab.uplink, lab.v4(81, 2) + "/24", lab.v6(2) + "/64"),
        (lab.host, br, lab.v4(82, 1) + "/24", None),
        (lab.backend, f"mfbe{t}", lab.v4(82, 10) + "/24", None),
        (lab.peer, f"mfpe{t}", lab.v4(82, 20) + "/24", None),
    ]
    for ns, dev, a4, a6 in addrs:
        ip("-n", ns, "addr", "add", a4, "dev", dev)
        if a6:
            ip("-n", ns, "addr", "add", a6, "dev", dev, "nodad")
        ip("-n", ns, "link", "set", dev, "up")
    ip("-n", lab.host, "route", "add", "default", "via", lab.v4(81, 1))
    ip("-n", lab.peer, "route", "add", "default", "via", lab.v4(82, 1))
    # The client may try to reach the internal side directly: the firewall must stop it.
    ip("-n", lab.client, "route", "add", lab.v4(82, 0) + "/24", "via", lab.v4(81, 2))
    _foreign_tables(lab)


FOREIGN = """
table ip podman-nat {
    chain POSTROUTING { type nat hook postrouting priority srcnat; policy accept;
        ip saddr 10.88.0.0/16 oifname != "podman0" masquerade
    }
    chain PREROUTING { type nat hook prerouting priority dstnat; policy accept;
        tcp dport 18080 dnat to 10.88.0.5:80
    }
}
table inet ts-filter {
    set peers { type ipv4_addr; elements = { 100.64.0.1, 100.64.0.2 } }
    chain ts-input { type filter hook input priority filter - 10; policy accept;
        iifname "tailscale0" ip saddr @peers accept
        iifname != "tailscale0" ip saddr 100.64.0.0/10 drop
    }
}
"""


def _foreign_tables(lab: Lab) -> None:
    assert NFT is not None
    env = dict(os.environ)
    subprocess.run(
        ["ip", "netns", "exec", lab.host, NFT, "-f", "-"],
        input=FOREIGN,
        text=True,
        check=True,
        capture_output=True,
        env=env,
        timeout=10,
    )


def fwd(lab: Lab) -> str:
    return f"8080:{lab.v4(82, 10)}:80/tcp,5300:{lab.v4(82, 10)}:53/udp"


def foreign_json(lab: Lab) -> list[object]:
    """Every ruleset object that does not belong to a mosnet table."""
    items = json.loads(lab.nft("-j", "list", "ruleset"))["nftables"]
    out = []
    for item in items:
        body = next(iter(item.values()))
        name = body.get("table", body.get("name")) if "table" not in item else body["name"]
        if isinstance(body, dict) and "version" not in body and not str(name).startswith("mosnet-"):
            out.append(item)
    return out


@contextlib.contextmanager
def running_lab(tmp: pathlib.Path) -> Iterator[Lab]:
    """The four namespaces with their servers up; torn down by PID and name."""
    pid = os.getpid()
    lab = Lab(pid % 200 + 20, str(pid), tmp)
    try:
        build(lab)
        lab.serve(lab.host, "host", "tcp:2222", "tcp:2223", "udp:5353", "udp:5354")
        lab.serve(lab.backend, "backend", "tcp:80", "udp:53")
        lab.serve(lab.client, "client", "tcp:7000")
        yield lab
    finally:
        for proc in reversed(lab.procs):
            stop(proc)
        for ns in (lab.client, lab.host, lab.backend, lab.peer):
            if ns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
