"""Execute a plan through netlink, with rollback when a step fails.

Thin on purpose: each action has one executor with replace semantics (an
existing link is adjusted, an address or route replaced, a missing link on
undo ignored), so applying the same plan twice changes nothing. When a step
fails, the plan's rollback runs to the end whatever fails inside it: the
bridge goes and the address lands on the NIC itself, so the machine stays
reachable. Errors are collected and returned, never raised to PID 1; only
programming errors (TypeError, ...) escape.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from mosnet.base import iproute, log
from mosnet.base.errors import MosnetError
from mosnet.dhcp4.lease import Lease
from mosnet.macnat import bridgenft
from mosnet.ovs import ofcontrol, ofsock, vswitch
from mosnet.state import resolvconf
from mosnet.topology.actions import (
    Action,
    AddAddress,
    AddRoute,
    CreateBridge,
    CreateVeth,
    DeleteLink,
    FlushAddresses,
    ForgetLocalMac,
    LinkUp,
    MacNatTable,
    OvsAddBridge,
    OvsBaseFlows,
    OvsDelBridge,
    SetMaster,
    SetMtu,
    SetNoMaster,
    StartOvs,
    Sysctl,
    WriteResolvConf,
)
from mosnet.topology.lease import lease_actions, route_actions
from mosnet.topology.plan import Plan

_log = log.get("apply")
RTNH_F_ONLINK = 4
RT_SCOPE_LINK = 253
NTF_MASTER = 0x04
RTPROT_STATIC = 4
RTPROT_DHCP = 16  # "proto dhcp" in iproute2
_EXPECTED = (OSError, NetlinkError, MosnetError, ValueError)  # what a step may fail with


class InjectedFailure(MosnetError):
    """Raised instead of running step ``fail_at`` (tests of the rollback)."""


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    done: int = 0  # actions completed before the failure (all of them when ok)
    failed: str | None = None  # "<action>: <error>"
    rolled_back: bool = False
    errors: tuple[str, ...] = ()  # the failure plus anything the rollback hit


@dataclass
class _Ctx:
    ipr: Any
    procsys: str


def apply_plan(
    plan: Plan, ipr: Any = None, *, fail_at: int | None = None, procsys: str = "/proc/sys"
) -> ApplyResult:
    """Run ``plan.actions`` in order; on a failure run ``plan.rollback``.

    ``fail_at`` (1-based) makes that step fail without running it.
    """
    if not plan.ok:
        return ApplyResult(False, errors=plan.errors)
    with _netlink(ipr) as nl:
        ctx = _Ctx(nl, procsys)
        total = len(plan.actions)
        for i, action in enumerate(plan.actions, 1):
            _log.info("[%d/%d] %s", i, total, action)
            try:
                if i == fail_at:
                    raise InjectedFailure(f"injected failure at step {i}")
                execute(action, ctx)
            except _EXPECTED as exc:
                failed = f"{action}: {_describe(exc)}"
                _log.error("[%d/%d] failed: %s; rolling back", i, total, failed)
                errors = _rollback(plan, ctx)
                return ApplyResult(False, i - 1, failed, True, (failed, *errors))
    _log.info("plan applied: %d actions", total)
    return ApplyResult(True, total)


def run_actions(actions: tuple[Action, ...], ipr: Any = None, procsys: str = "/proc/sys") -> None:
    """Run ``actions`` in order, no rollback: the first failure propagates."""
    with _netlink(ipr) as nl:
        ctx = _Ctx(nl, procsys)
        for action in actions:
            execute(action, ctx)


def _rollback(plan: Plan, ctx: _Ctx) -> tuple[str, ...]:
    """Every rollback step is tried; failures are logged and collected."""
    errors: list[str] = []
    for i, action in enumerate(plan.rollback, 1):
        _log.warning("rollback [%d/%d] %s", i, len(plan.rollback), action)
        try:
            execute(action, ctx)
        except _EXPECTED as exc:
            errors.append(f"rollback: {action}: {_describe(exc)}")
            _log.error("%s", errors[-1])
    return tuple(errors)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NetlinkError):
        return f"netlink error {exc.code} ({os.strerror(exc.code)})"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def _netlink(ipr: Any) -> Iterator[Any]:
    if ipr is not None:
        yield ipr
        return
    own = IPRoute()
    try:
        yield own
    finally:
        own.close()


def execute(action: Action, ctx: _Ctx) -> None:
    """Run one action (dispatch on its type)."""
    _EXECUTORS[type(action)](action, ctx)


# -- lookups -------------------------------------------------------------------------


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _need(ipr: Any, name: str) -> int:
    idx = _index(ipr, name)
    if idx is None:
        raise MosnetError(f"link {name!r} does not exist")
    return idx


def _link(ipr: Any, idx: int) -> Any:
    return ipr.get_links(idx)[0]


def _kind(msg: Any) -> str:
    info = msg.get_attr("IFLA_LINKINFO")
    return str(info.get_attr("IFLA_INFO_KIND") or "") if info is not None else ""


def _mac(msg: Any) -> str:
    return str(msg.get_attr("IFLA_ADDRESS") or "").lower()


# -- executors -----------------------------------------------------------------------


def _create_bridge(a: CreateBridge, ctx: _Ctx) -> None:
    settings = {"kind": "bridge", "br_stp_state": 0, "br_forward_delay": 0}
    idx = _index(ctx.ipr, a.name)
    if idx is None:
        ctx.ipr.link("add", ifname=a.name, address=a.mac, **settings)
        return
    msg = _link(ctx.ipr, idx)
    if _kind(msg) != "bridge":
        raise MosnetError(f"{a.name} exists but is a {_kind(msg) or 'physical'} link")
    ctx.ipr.link("set", index=idx, **settings)  # exists: make sure STP is off
    if _mac(msg) != a.mac.lower():
        ctx.ipr.link("set", index=idx, address=a.mac)


def _create_veth(a: CreateVeth, ctx: _Ctx) -> None:
    idx = _index(ctx.ipr, a.name)
    if idx is None:
        ctx.ipr.link("add", ifname=a.name, address=a.mac, kind="veth", peer={"ifname": a.peer})
        return
    msg = _link(ctx.ipr, idx)
    if _kind(msg) != "veth" or _index(ctx.ipr, a.peer) is None:
        raise MosnetError(f"{a.name} exists but is not a veth with peer {a.peer}")
    if _mac(msg) != a.mac.lower():
        ctx.ipr.link("set", index=idx, address=a.mac)


def _set_master(a: SetMaster, ctx: _Ctx) -> None:
    idx, master = _need(ctx.ipr, a.dev), _need(ctx.ipr, a.master)
    if _link(ctx.ipr, idx).get_attr("IFLA_MASTER") != master:  # re-enslaving would flap
        ctx.ipr.link("set", index=idx, master=master)


def _set_nomaster(a: SetNoMaster, ctx: _Ctx) -> None:
    idx = _index(ctx.ipr, a.dev)
    if idx is not None and _link(ctx.ipr, idx).get_attr("IFLA_MASTER"):
        ctx.ipr.link("set", index=idx, master=0)


def _delete_link(a: DeleteLink, ctx: _Ctx) -> None:
    idx = _index(ctx.ipr, a.name)
    if idx is not None:
        ctx.ipr.link("del", index=idx)


def _forget_local_mac(a: ForgetLocalMac, ctx: _Ctx) -> None:
    idx = _need(ctx.ipr, a.dev)
    try:
        ctx.ipr.fdb("del", ifindex=idx, lladdr=a.mac, flags=NTF_MASTER)
    except NetlinkError as exc:
        if exc.code != errno.ENOENT:  # already gone: that is the goal
            raise


def _flush(a: FlushAddresses, ctx: _Ctx) -> None:
    idx = _need(ctx.ipr, a.dev)
    for msg in ctx.ipr.get_addr(index=idx):
        ctx.ipr.addr(
            "del", index=idx, address=msg.get_attr("IFA_ADDRESS"), prefixlen=msg["prefixlen"]
        )


def _link_up(a: LinkUp, ctx: _Ctx) -> None:
    ctx.ipr.link("set", index=_need(ctx.ipr, a.dev), state="up")


def _sysctl(a: Sysctl, ctx: _Ctx) -> None:
    with open(os.path.join(ctx.procsys, a.key), "w") as f:
        f.write(a.value)


def _add_address(a: AddAddress, ctx: _Ctx) -> None:
    extra: dict[str, Any] = {}
    if a.lifetime is not None:
        extra.update(valid_lft=a.lifetime, preferred_lft=a.lifetime)
    if a.broadcast is not None:
        extra["broadcast"] = str(a.broadcast)
    ctx.ipr.addr(
        "replace",
        index=_need(ctx.ipr, a.dev),
        address=str(a.address.ip),
        prefixlen=a.address.network.prefixlen,
        **extra,
    )


def route_args(a: AddRoute, idx: int) -> dict[str, Any]:
    """The netlink arguments of route ``a`` on interface ``idx`` (also to delete it)."""
    args: dict[str, Any] = {
        "family": socket.AF_INET6 if a.dst.version == 6 else socket.AF_INET,
        "dst": str(a.dst.network_address),
        "dst_len": a.dst.prefixlen,
        "oif": idx,
        "proto": RTPROT_DHCP if a.proto == "dhcp" else RTPROT_STATIC,
    }
    if a.gateway is None:
        args["scope"] = RT_SCOPE_LINK
    else:
        args["gateway"] = str(a.gateway)
    if a.onlink:
        args["flags"] = RTNH_F_ONLINK
    return args


def _add_route(a: AddRoute, ctx: _Ctx) -> None:
    ctx.ipr.route("replace", **route_args(a, _need(ctx.ipr, a.dev)))


def _set_mtu(a: SetMtu, ctx: _Ctx) -> None:
    ctx.ipr.link("set", index=_need(ctx.ipr, a.dev), mtu=a.mtu)


def _write_resolv(a: WriteResolvConf, ctx: _Ctx) -> None:
    # A file that cannot be written is logged; no reason to undo the network.
    static = resolvconf.DnsInfo.of(a.nameservers, a.search, "written by mosnet (static)")
    resolvconf.ResolvConf([a.path]).set_v4(static)


def _macnat_table(a: MacNatTable, ctx: _Ctx) -> None:
    # Logged, never raised: a bridge without MAC NAT still carries the host.
    bridgenft.load_script(a.script, a.uplink)


def _ovs_result(result: vswitch.Result) -> None:
    for note in result.notes:
        _log.info("ovs: %s", note)
    if not result.ok:
        raise MosnetError("; ".join(result.errors))


def _datapath(name: str) -> vswitch.Datapath:
    return "netdev" if name == "netdev" else "system"


def _start_ovs(a: StartOvs, ctx: _Ctx) -> None:
    if vswitch.running(a.run_dir):
        _log.info("ovs: daemons already running in %s", a.run_dir)
        return
    _ovs_result(vswitch.start(a.run_dir, datapath=_datapath(a.datapath)))


def _ovs_add_bridge(a: OvsAddBridge, ctx: _Ctx) -> None:
    dp = _datapath(a.datapath)
    result = vswitch.build_bridge(a.nic, a.port, a.mac, run_dir=a.run_dir, datapath=dp, mtu=a.mtu)
    _ovs_result(result)


def _ovs_base_flows(a: OvsBaseFlows, ctx: _Ctx) -> None:
    ofsock.install(vswitch.paths(a.run_dir)["controller"], ofcontrol.restore_messages())


def _ovs_del_bridge(a: OvsDelBridge, ctx: _Ctx) -> None:
    if vswitch.running(a.run_dir):
        _ovs_result(vswitch.remove_bridge(a.run_dir))


_EXECUTORS: dict[type, Callable[[Any, _Ctx], None]] = {
    CreateBridge: _create_bridge,
    CreateVeth: _create_veth,
    SetMaster: _set_master,
    SetNoMaster: _set_nomaster,
    DeleteLink: _delete_link,
    ForgetLocalMac: _forget_local_mac,
    FlushAddresses: _flush,
    LinkUp: _link_up,
    Sysctl: _sysctl,
    AddAddress: _add_address,
    AddRoute: _add_route,
    SetMtu: _set_mtu,
    MacNatTable: _macnat_table,
    WriteResolvConf: _write_resolv,
    StartOvs: _start_ovs,
    OvsAddBridge: _ovs_add_bridge,
    OvsBaseFlows: _ovs_base_flows,
    OvsDelBridge: _ovs_del_bridge,
}


# -- leases ---------------------------------------------------------------------------


def apply_lease(lease: Lease, dev: str, now: float, *, ipr: Any = None) -> None:
    """Put ``lease`` on ``dev``; netlink errors propagate (the caller logs them)."""
    run_actions(lease_actions(lease, dev, now), ipr)


def remove_lease(lease: Lease, dev: str, *, ipr: Any = None) -> None:
    """Undo ``apply_lease`` (lease expired or NAKed); missing pieces are fine."""
    with iproute.session(ipr) as ip:
        idx = ip.link_lookup(ifname=dev)[0]
        for route in reversed(route_actions(lease, dev)):
            with contextlib.suppress(NetlinkError):
                ip.route("del", **route_args(route, idx))
        with contextlib.suppress(NetlinkError):
            ip.addr("del", index=idx, address=str(lease.address), prefixlen=lease.prefixlen)
