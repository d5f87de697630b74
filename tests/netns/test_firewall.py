"""mosnet-firewall and mosnet-nat loaded by the real nft, proven with traffic.

Topology (names carry the pid; cleanup by PID and ``ip netns del``):

    client ns (upstream: router, dnsmasq, a LAN client) 10.81.X.1 / fd00:81:X::1
        |  veth
    host ns (mosnet) uplink 10.81.X.2 / fd00:81:X::2, default via 10.81.X.1
        |  bridge 10.82.X.1 with two veth ports
    backend ns 10.82.X.10 (no default route)   peer ns 10.82.X.20 (LAN peer)

Servers are small Python threads answering "<tag> <peer address>", so a
test can tell "dropped" (timeout) from "no listener" (refused) and see the
source address a backend sees. The module shares one lab; each test applies
the configuration it needs first.
"""

from __future__ import annotations

import contextlib
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

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "golden" / "nft"
PY = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable
NFT = next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)
DNSMASQ = "/usr/sbin/dnsmasq"

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


def _ip(*args: str) -> None:
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _veth(lab: Lab, a: str, ns_a: str, b: str, ns_b: str) -> None:
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    _ip("link", "set", a, "netns", ns_a)
    _ip("link", "set", b, "netns", ns_b)


def _build(lab: Lab) -> None:
    t = lab.tag
    lab.client, lab.host, lab.backend, lab.peer = (f"mosfw-{r}{t}" for r in "chbp")
    for ns in (lab.client, lab.host, lab.backend, lab.peer):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    lab.uplink, lab.client_if = f"mfu{t}", f"mfc{t}"
    _veth(lab, lab.client_if, lab.client, lab.uplink, lab.host)
    _veth(lab, f"mfbe{t}", lab.backend, f"mfb{t}", lab.host)
    _veth(lab, f"mfpe{t}", lab.peer, f"mfp{t}", lab.host)
    br = f"mfbr{t}"
    _ip("-n", lab.host, "link", "add", br, "type", "bridge")
    for port in (f"mfb{t}", f"mfp{t}"):
        _ip("-n", lab.host, "link", "set", port, "master", br)
        _ip("-n", lab.host, "link", "set", port, "up")
    addrs = [
        (lab.client, lab.client_if, lab.v4(81, 1) + "/24", lab.v6(1) + "/64"),
        (lab.host, lab.uplink, lab.v4(81, 2) + "/24", lab.v6(2) + "/64"),
        (lab.host, br, lab.v4(82, 1) + "/24", None),
        (lab.backend, f"mfbe{t}", lab.v4(82, 10) + "/24", None),
        (lab.peer, f"mfpe{t}", lab.v4(82, 20) + "/24", None),
    ]
    for ns, dev, a4, a6 in addrs:
        _ip("-n", ns, "addr", "add", a4, "dev", dev)
        if a6:
            _ip("-n", ns, "addr", "add", a6, "dev", dev, "nodad")
        _ip("-n", ns, "link", "set", dev, "up")
    _ip("-n", lab.host, "route", "add", "default", "via", lab.v4(81, 1))
    _ip("-n", lab.peer, "route", "add", "default", "via", lab.v4(82, 1))
    # The client may try to reach the internal side directly: the firewall must stop it.
    _ip("-n", lab.client, "route", "add", lab.v4(82, 0) + "/24", "via", lab.v4(81, 2))
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0 or NFT is None or not shutil.which("ip"):
        pytest.skip("needs root, iproute2 and nft")
    pid = os.getpid()
    lab = Lab(pid % 200 + 20, str(pid), tmp_path_factory.mktemp("fw"))
    try:
        _build(lab)
        lab.serve(lab.host, "host", "tcp:2222", "tcp:2223", "udp:5353", "udp:5354")
        lab.serve(lab.backend, "backend", "tcp:80", "udp:53")
        lab.serve(lab.client, "client", "tcp:7000")
        yield lab
    finally:
        for proc in reversed(lab.procs):
            _stop(proc)
        for ns in (lab.client, lab.host, lab.backend, lab.peer):
            if ns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _fwd(lab: Lab) -> str:
    return f"8080:{lab.v4(82, 10)}:80/tcp,5300:{lab.v4(82, 10)}:53/udp"


def _foreign_json(lab: Lab) -> list[object]:
    """Every ruleset object that does not belong to a mosnet table."""
    items = json.loads(lab.nft("-j", "list", "ruleset"))["nftables"]
    out = []
    for item in items:
        body = next(iter(item.values()))
        name = body.get("table", body.get("name")) if "table" not in item else body["name"]
        if isinstance(body, dict) and "version" not in body and not str(name).startswith("mosnet-"):
            out.append(item)
    return out


# --- golden `nft list table` ---------------------------------------------------

LIST_CASES = {
    "list_ssh": ("mosfirewall=ssh", "inet mosnet-firewall"),
    "list_permissive": ("mosfirewall=permissive", "inet mosnet-firewall"),
    "list_custom": ("mosfirewall=ssh,tcp:8080,8000-8100,udp:53,51820", "inet mosnet-firewall"),
    "list_nat": ("mosfirewall=ssh mosnat=uplink0,8080:192.168.1.100:80/tcp", "ip mosnet-nat"),
}


@pytest.mark.parametrize("case", sorted(LIST_CASES))
def test_nft_list_golden(lab: Lab, case: str) -> None:
    """What the kernel holds after loading, in a throwaway netns (stable names)."""
    cmdline, table = LIST_CASES[case]
    ns = f"mosfw-g{lab.tag}"
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
        res = lab.run(ns, [PY, "-c", APPLY, cmdline], timeout=30)
        assert json.loads(res.stdout)["applied"], res.stderr
        text = lab.run(ns, [str(NFT), "list", "table", *table.split()]).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    path = GOLDEN / f"{case}.nft"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


# --- traffic -------------------------------------------------------------------


def test_ports_and_ping_v4_v6(lab: Lab) -> None:
    res = lab.apply("mosfirewall=ssh,tcp:2222,udp:5353")
    assert res["applied"] == ["inet mosnet-firewall"] and not res["errors"], res
    assert res["sysctls"] == []  # no NAT: forwarding left alone
    for dst in (lab.v4(81, 2), lab.v6(2)):
        assert lab.probe(lab.client, "tcp", dst, 2222)["ok"], dst
        assert lab.probe(lab.client, "tcp", dst, 2223) == {"ok": False, "err": "timeout"}
        # 22 is open in the firewall but nothing listens: refused, not dropped
        assert lab.probe(lab.client, "tcp", dst, 22)["err"] == "ConnectionRefusedError"
        assert lab.probe(lab.client, "udp", dst, 5353)["ok"], dst
        assert lab.probe(lab.client, "udp", dst, 5354) == {"ok": False, "err": "timeout"}
        ping = lab.run(lab.client, ["/bin/busybox", "ping", "-c", "1", "-W", "2", dst])
        assert ping.returncode == 0, ping.stdout + ping.stderr
    counters = lab.nft("list", "chain", "inet", "mosnet-firewall", "input")
    assert 'counter packets 0 bytes 0 comment "dropped by policy"' not in counters


DHCP = textwrap.dedent("""
    import json, sys, logging
    from mosnet.base import log
    from mosnet.dhcp4 import Client, ClientConfig, Config
    from mosnet.topology.netapply import apply_lease
    log.setup(level=logging.INFO)
    ifname = sys.argv[1]
    client = Client(ifname, config=ClientConfig(machine=Config(renew_after=1.0),
                                                probe_count=0))
    lease = client.acquire(10.0)
    if lease is None:
        print(json.dumps({"lease": None})); sys.exit(0)
    apply_lease(lease, ifname, client.clock())
    import time
    renewed, end = [], time.monotonic() + 20
    client.run_forever(lambda l: renewed.append(1), lambda l: None,
                       should_stop=lambda: bool(renewed) or time.monotonic() > end)
    print(json.dumps({"lease": str(lease.address), "renewed": len(renewed)}))
""")


def test_dhcp4_and_slaac_with_firewall_on(lab: Lab) -> None:
    res = lab.apply("mosfirewall=ssh")
    assert res["applied"] == ["inet mosnet-firewall"], res
    x, log_path = lab.x, lab.tmp / "dnsmasq.log"
    lab.popen(
        lab.client,
        [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            f"--interface={lab.client_if}",
            "--except-interface=lo",
            f"--dhcp-range=10.81.{x}.100,10.81.{x}.150,255.255.255.0,2m",
            f"--dhcp-range=::,constructor:{lab.client_if},ra-only,64,2m",
            "--enable-ra",
            "--ra-param=" + lab.client_if + ",3",
            "--log-dhcp",
            f"--log-facility={log_path}",
            f"--dhcp-leasefile={lab.tmp / 'leases'}",
            f"--pid-file={lab.tmp / 'dnsmasq.pid'}",
            "--user=root",
            "--no-ping",
        ],
    )
    out = lab.run(lab.host, [PY, "-c", DHCP, lab.uplink], timeout=60)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    dlog = log_path.read_text(errors="replace") if log_path.exists() else ""
    assert str(got["lease"]).startswith(f"10.81.{x}."), out.stderr + dlog
    assert got["renewed"] >= 1, out.stderr + dlog  # the renewal ACK is unicast UDP to :68
    end, addrs = time.monotonic() + 20, ""
    while time.monotonic() < end:
        addrs = lab.run(lab.host, ["ip", "-6", "addr", "show", "dev", lab.uplink]).stdout
        if "dynamic" in addrs and f"fd00:81:{x:x}:" in addrs:
            break
        time.sleep(0.5)
    assert "dynamic" in addrs, addrs + dlog  # SLAAC address from the RA


def test_port_forward_masquerade_hairpin(lab: Lab) -> None:
    res = lab.apply(f"mosfirewall=ssh mosnat=snat,{_fwd(lab)}")
    assert res["applied"] == ["inet mosnet-firewall", "ip mosnet-nat"], res
    assert res["uplink"] == lab.uplink and res["sysctls"] == ["net.ipv4.ip_forward=1"]
    ext, inner = lab.v4(81, 2), lab.v4(82, 1)
    # from outside: reaches the backend, which has no route back: masquerade
    assert lab.probe(lab.client, "tcp", ext, 8080) == {"ok": True, "reply": f"backend {inner}"}
    assert lab.probe(lab.client, "udp", ext, 5300) == {"ok": True, "reply": f"backend {inner}"}
    # hairpin: the host itself and a peer on the backend's own LAN
    assert lab.probe(lab.host, "tcp", ext, 8080) == {"ok": True, "reply": f"backend {inner}"}
    assert lab.probe(lab.peer, "tcp", ext, 8080) == {"ok": True, "reply": f"backend {inner}"}
    # bridged LAN traffic is untouched; the internal side reaches out, masqueraded
    direct = lab.probe(lab.peer, "tcp", lab.v4(82, 10), 80)
    assert direct == {"ok": True, "reply": f"backend {lab.v4(82, 20)}"}
    assert lab.probe(lab.peer, "tcp", lab.v4(81, 1), 7000) == {"ok": True, "reply": f"client {ext}"}
    # but the uplink cannot open connections into the internal side
    assert lab.probe(lab.client, "tcp", lab.v4(82, 10), 80) == {"ok": False, "err": "timeout"}


def test_unknown_nat_iface_keeps_firewall_and_forwards(lab: Lab) -> None:
    res = lab.apply(f"mosfirewall=ssh,tcp:2222 mosnat=eth9,{_fwd(lab)}")
    assert res["applied"] == ["inet mosnet-firewall", "ip mosnet-nat"], res
    assert "eth9" in str(res["errors"]) and "eth9" in str(res["log"])
    assert 'oifname "eth9"' not in lab.nft("list", "table", "ip", "mosnet-nat")
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 2223)["err"] == "timeout"
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 8080)["ok"]


def test_foreign_tables_survive_and_reapply_is_stable(lab: Lab) -> None:
    before = _foreign_json(lab)
    assert {"podman-nat", "ts-filter"} <= {
        i["table"]["name"] for i in before if isinstance(i, dict) and "table" in i
    }
    cmdline = f"mosfirewall=permissive,udp:5353 mosnat=snat,{_fwd(lab)}"
    lab.apply(cmdline)
    first = lab.nft("-s", "list", "ruleset")
    lab.apply(cmdline)
    assert lab.nft("-s", "list", "ruleset") == first
    assert _foreign_json(lab) == before


def test_invalid_config_keeps_old_tables(lab: Lab) -> None:
    lab.apply(f"mosfirewall=ssh mosnat=snat,{_fwd(lab)}")
    before = lab.nft("-s", "list", "ruleset")
    res = lab.apply("mosfirewall=ssh", "garbage")
    assert res["applied"] == [] and res["errors"], res
    assert "nft rejected" in str(res["log"]) and "Error" in str(res["log"])
    assert lab.nft("-s", "list", "ruleset") == before


def test_none_removes_the_firewall_table(lab: Lab) -> None:
    lab.apply("mosfirewall=ssh")
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 2223)["err"] == "timeout"
    res = lab.apply("mosfirewall=none mosnat=none")
    assert res["applied"] == ["deleted inet mosnet-firewall", "deleted ip mosnet-nat"], res
    assert "mosnet-" not in lab.nft("list", "tables")
    assert lab.probe(lab.client, "tcp", lab.v4(81, 2), 2223)["ok"]
    assert "podman-nat" in lab.nft("list", "tables")
