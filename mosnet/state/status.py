"""``mosnet status``: state.json plus what is alive now, for humans and monitoring.

Exit codes: 0 fine (or no ``--check``), 1 a check failed, 2 no usable state.
Every check is a :class:`Check`; ``--check`` fails if any of them does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from mosnet.state import statefile

DAEMON_TITLE = "@mosnet-daemon"  # mosnet.daemon.mainloop.TITLE, without importing the daemon
PROXY_TITLE = "@mosnet-proxy"
WATCH_TITLE = "@mosnet-watch"  # mosnet.daemon.watch.TITLE
OVS_DAEMONS = ("ovsdb-server", "ovs-vswitchd")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _cmdline(pid: int, proc: str) -> str:
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int, proc: str) -> int | None:
    try:
        with open(f"{proc}/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int, title: str, proc: str = "/proc") -> bool:
    """``pid`` runs and is what we think it is (a reused PID is not)."""
    return _cmdline(pid, proc).startswith(title)


def children(ppid: int, title: str, proc: str = "/proc") -> list[int]:
    pids = (int(name) for name in os.listdir(proc) if name.isdigit())
    return sorted(p for p in pids if _ppid(p, proc) == ppid and alive(p, title, proc))


def _pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_checks(st: statefile.State, proc: str = "/proc") -> list[Check]:
    out: list[Check] = []
    daemon = (st.get("daemon") or {}).get("pid")
    if daemon:
        up = alive(daemon, DAEMON_TITLE, proc)
        out.append(Check("daemon", up, f"pid {daemon} {'running' if up else 'not running'}"))
    watcher = (st.get("watch") or {}).get("pid")
    if watcher:  # restarts the daemon and the OVS daemons
        up = alive(watcher, WATCH_TITLE, proc)
        out.append(Check("watch", up, f"pid {watcher} {'running' if up else 'not running'}"))
    if st.get("proxy"):
        kids = children(daemon, PROXY_TITLE, proc) if daemon else []
        detail = f"pid {kids[0]} running" if kids else "no @mosnet-proxy under the daemon"
        out.append(Check("proxy", bool(kids), detail))
    if st.get("ovs"):
        run_dir = st["ovs"].get("run_dir", "/run/openvswitch")
        for name in OVS_DAEMONS:
            pid = _pidfile(f"{run_dir}/{name}.pid")
            up = (
                pid is not None
                and alive(pid, "@" + name, proc)
                or (pid is not None and alive(pid, name, proc))
            )
            out.append(Check(name, up, f"pid {pid} running" if up else "not running"))
    return out


def lease_checks(st: statefile.State, now: float) -> list[Check]:
    lease = st.get("lease")
    if not lease:
        if (st.get("network") or {}).get("mode") == "dhcp":
            return [Check("lease", False, "no DHCP lease")]
        return []
    left = lease["expires_at"] - now
    if left <= 0:
        return [Check("lease", False, f"{lease['address']} expired {_span(-left)} ago")]
    renew = lease["renew_at"] - now
    when = f"renews in {_span(renew)}" if renew > 0 else f"renewal overdue by {_span(-renew)}"
    return [Check("lease", True, f"{lease['address']} {when}, expires in {_span(left)}")]


def wanted_addresses(st: statefile.State) -> set[tuple[str, str]]:
    """(ifname, address/len) that must still be there: global ones and the lease."""
    net = st.get("network") or {}
    want = {(a["ifname"], a["address"]) for a in net.get("addresses", []) if a["scope"] == "global"}
    lease = st.get("lease")
    if lease:
        want.add((lease["ifname"], lease["address"]))
    return want


def network_checks(
    st: statefile.State, addresses: Iterable[statefile.State], routes: Iterable[statefile.State]
) -> list[Check]:
    have = {(a["ifname"], a["address"]) for a in addresses}
    missing = sorted(f"{a} on {i}" for i, a in wanted_addresses(st) - have)
    out = [Check("addresses", not missing, "missing: " + ", ".join(missing) if missing else "ok")]
    net = st.get("network") or {}
    had = {(r["dev"], r.get("via")) for r in net.get("routes", []) if r["dst"] == "default"}
    now = {(r["dev"], r.get("via")) for r in routes if r["dst"] == "default"}
    lost = sorted(f"via {via} dev {dev}" for dev, via in had - now)
    out.append(Check("default route", not lost, "missing: " + ", ".join(lost) if lost else "ok"))
    return out


def boot_checks(st: statefile.State) -> list[Check]:
    result = (st.get("boot") or {}).get("result", "unknown")
    out = [Check("boot", result in ("switch_root", "chain"), result)]
    if result == "chain":  # the daemon followed the distro's init into this root
        followed = bool((st.get("chain") or {}).get("followed"))
        out.append(Check("chain", followed, "daemon followed" if followed else "not followed"))
    fw = st.get("firewall") or {}
    if fw.get("requested"):
        errors = fw.get("errors", [])
        detail = "; ".join(errors) if errors else ", ".join(fw.get("tables", [])) or "nothing"
        out.append(Check("firewall", not errors, detail))
    return out


def live_network(st: statefile.State) -> tuple[list[statefile.State], list[statefile.State]]:
    """What the kernel has now on the interfaces state.json names."""
    from mosnet.base.iproute import session  # pyroute2: only when the live view is wanted

    net = st.get("network") or {}
    names = [n for n in (net.get("port"), net.get("nic")) if n]
    names += [st["lease"]["ifname"]] if st.get("lease") else []
    with session() as ipr:
        return statefile.interface_snapshot(ipr, dict.fromkeys(names))


def all_checks(st: statefile.State, now: float, proc: str = "/proc") -> list[Check]:
    try:
        addresses, routes = live_network(st)
        net = network_checks(st, addresses, routes)
    except Exception as exc:  # no netlink here (a container, no pyroute2)
        net = [Check("addresses", False, f"cannot read the kernel's addresses: {exc}")]
    return boot_checks(st) + process_checks(st, proc) + lease_checks(st, now) + net


def _span(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def _stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "-"


def render(st: statefile.State, checks: list[Check]) -> str:
    """The human view: what mosnet set up, then one line per check."""
    net, boot = st.get("network") or {}, st.get("boot") or {}
    addrs = ", ".join(f"{a['address']} ({a['ifname']})" for a in net.get("addresses", []))
    routes = ", ".join(
        f"{r['dst']}{' via ' + r['via'] if r.get('via') else ''} dev {r['dev']}"
        for r in net.get("routes", [])
    )
    dns = net.get("dns") or {}
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in (boot.get("timings_ms") or {}).items())
    lines = [
        f"mosnet state (schema {st['schema']}), updated {_stamp(st.get('updated'))}",
        f"mode      {net.get('mode', '-')} on {net.get('nic') or '-'}"
        f" ({net.get('nic_reason') or 'no reason recorded'})",
        f"bridge    {net.get('backend') or '-'} {net.get('bridge') or ''}, port {net.get('port')}",
        f"addresses {addrs or '-'}",
        f"routes    {routes or '-'}",
        f"dns       {' '.join(dns.get('servers', [])) or '-'}"
        + (f"; search {' '.join(dns['search'])}" if dns.get("search") else ""),
        f"boot      {boot.get('result', '-')} at uptime {boot.get('uptime', 0):.1f} s; {timings}",
        "checks:",
    ]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name:<14} {c.detail}" for c in checks]
    return "\n".join(lines)


def main(run_dir: str, as_json: bool, check: bool, proc: str = "/proc") -> int:
    try:
        st = statefile.load(run_dir)
    except statefile.StateError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}) if as_json else f"mosnet: {exc}")
        return 2
    checks = all_checks(st, time.time(), proc)
    ok = all(c.ok for c in checks)
    if as_json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks], "state": st}, indent=1))
    else:
        print(render(st, checks))
    return 0 if ok or not check else 1
