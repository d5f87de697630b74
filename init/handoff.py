"""What PID 1 leaves in /run/mosnet for the real system: state.json and the boot log.

``record`` runs right before switch_root (and before the fallback), under a
guard of its own: the hand-off must never cost the boot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mosnet.base import log
from mosnet.base.iproute import session
from mosnet.base.names import BRIDGE
from mosnet.daemon.proxyproc import ProxySpec
from mosnet.dhcp4.lease import Lease
from mosnet.ipv6.autoconf import Ipv6State
from mosnet.nft.firewall import FirewallResult
from mosnet.state import statefile

VERSION = "0.1.0"

_log = log.get("init.handoff")


@dataclass
class NetFacts:
    """What the network phase decided; filled in by init.boot as it goes."""

    mode: str = "none"
    nic: str | None = None
    nic_reason: str = ""
    nic_mac: str | None = None
    backend: str = ""
    port: str | None = None  # where the host addresses live
    errors: list[str] = field(default_factory=list)
    coexist: list[str] = field(default_factory=list)  # files for networkd, NM, ifupdown
    firewall: FirewallResult | None = None
    firewall_requested: bool = False
    hostname: str | None = None  # from ip=
    links: list[str] = field(default_factory=list)  # renames, bonds, VLANs as planned


def open_log(run_dir: str = statefile.RUN_DIR) -> None:
    """Copy every log line into /run/mosnet/boot.log from now on (the daemon too)."""
    try:
        os.makedirs(run_dir, mode=0o755, exist_ok=True)
        log.add_file(os.path.join(run_dir, statefile.LOG_FILE))
    except OSError as exc:
        _log.warning("no boot log file in %s: %s", run_dir, exc.strerror or exc)


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def boot_section(timings: dict[str, float], result: str, root: str, init: str | None) -> Any:
    return {
        "id": _boot_id(),
        "result": result,  # "switch_root", or "fallback: <reason>"
        "uptime": round(log.uptime(), 3),
        "root": root,
        "init": init,
        "timings_ms": {k: round(v * 1000, 1) for k, v in timings.items()},
        "log": os.path.join(statefile.RUN_DIR, statefile.LOG_FILE),
    }


def _resolv(path: str) -> dict[str, list[str]]:
    servers: list[str] = []
    search: list[str] = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if words[:1] == ["nameserver"] and len(words) > 1:
                    servers.append(words[1])
                elif words[:1] in (["search"], ["domain"]):
                    search += words[1:]
    except OSError:
        pass
    return {"servers": servers, "search": search}


def network_section(net: NetFacts, run_dir: str) -> Any:
    out: dict[str, Any] = {
        "mode": net.mode,
        "nic": net.nic,
        "nic_mac": net.nic_mac,
        "nic_reason": net.nic_reason,
        "backend": net.backend or None,
        "bridge": BRIDGE if net.backend in ("linux", "ovs") and net.port != net.nic else None,
        "port": net.port,
        "dns": _resolv(os.path.join(run_dir, "resolv.conf")),
        "coexist": list(net.coexist),
        "errors": list(net.errors),
        "hostname": net.hostname,
        "links": list(net.links),
    }
    names = [n for n in (net.port, net.nic) if n]
    try:
        with session() as ipr:
            out["addresses"], out["routes"] = statefile.interface_snapshot(
                ipr, dict.fromkeys(names)
            )
    except Exception as exc:  # netlink trouble must not cost the hand-off
        out["addresses"], out["routes"] = [], []
        out["errors"].append(f"no address snapshot: {exc}")
    return out


def firewall_section(net: NetFacts) -> Any:
    res = net.firewall
    if not net.firewall_requested or res is None:
        return {"requested": net.firewall_requested, "tables": [], "errors": []}
    return {
        "requested": True,
        "tables": list(res.applied),
        "sysctls": list(res.sysctls),
        "masquerade_uplink": res.uplink,
        "errors": list(res.errors),
    }


def services_section(
    daemon_pid: int | None, proxy: ProxySpec | None, v6: Ipv6State | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"daemon": {"pid": daemon_pid} if daemon_pid else None}
    if proxy is not None:
        cfg = proxy.config
        answers = sorted(map(str, (*cfg.v4, *cfg.v6)))
        out["proxy"] = {"backend": proxy.backend, "ifname": proxy.ifname, "answers_for": answers}
        if proxy.backend == "ovs":
            out["ovs"] = {"run_dir": proxy.ovs_run_dir, "bridge": BRIDGE}
    else:
        out["proxy"] = None
    if v6 is not None:
        out["ipv6"] = {"ifname": v6.ifname, "mode": v6.mode, "deferred_to_daemon": v6.deferred}
    return out


def record(
    run_dir: str,
    boot: Any,
    net: NetFacts,
    lease: Lease | None,
    lease_clock: float | None,
    services: dict[str, Any],
) -> None:
    """Write state.json; log and carry on if that fails."""
    sections: dict[str, Any] = {
        "producer": {"name": "mosnet-init", "version": VERSION, "pid": os.getpid()},
        "boot": boot,
        "network": network_section(net, run_dir),
        "firewall": firewall_section(net),
        **services,
    }
    if lease is not None and lease_clock is not None and net.port:
        sections["lease"] = statefile.lease_section(lease, net.port, lease_clock)

    def change(current: dict[str, Any]) -> None:
        theirs = current.get("lease")
        current.update(sections)
        if theirs and theirs.get("obtained", 0) > sections.get("lease", {}).get("obtained", 0):
            current["lease"] = theirs  # the daemon already wrote a newer one

    try:
        statefile.update(run_dir, change)
        _log.info("state written to %s", os.path.join(run_dir, statefile.STATE_FILE))
    except OSError as exc:
        _log.error("state.json not written: %s", exc)
