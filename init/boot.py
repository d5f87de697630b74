"""PID 1 of the mosnet initramfs: the boot sequence and its fallbacks.

Order: API filesystems, logging, command line, drivers, network, root
device, daemon, switch_root. Every phase runs under ``pid1.guard`` so no
exception unwinds PID 1. Phases that completed are not repeated when a later
one fails and the boot is retried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import NoReturn

from init import (
    bootcfg,
    chain,
    cmdsetup,
    handoff,
    modindex,
    modules,
    mounts,
    pid1,
    procs,
    rescue,
    rootdev,
    switchroot,
)
from mosnet.base import log
from mosnet.config import cmdmerge, console
from mosnet.config.model import NetConfig
from mosnet.daemon import mainloop as daemon
from mosnet.netphase import phase
from mosnet.netphase.outcome import Outcome
from mosnet.state.coexist import hand_off

NEW_ROOT = "/sysroot"
RUN_DIR = "/run/mosnet"
MAX_ATTEMPTS = 3
RETRY_DELAY = 5.0
ENV = {
    "HOME": "/",
    "TERM": "linux",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

DEVKMSG = "/proc/sys/kernel/printk_devkmsg"

_log = log.get("init")


@dataclass
class BootState:
    """What has been done so far; a retry picks up where the last try stopped."""

    cfg: bootcfg.BootConfig
    net: NetConfig = field(default_factory=NetConfig)
    timings: dict[str, float] = field(default_factory=dict)
    devkmsg: str | None = None  # the rate-limit setting to restore
    modules_done: bool = False
    network_done: bool = False  # tried: a retry never runs the network phase twice
    network: Outcome | None = None
    root_mounted: bool = False
    root_source: dict[str, object] | None = None  # mosroot=: url, sha256, size, time
    daemon: daemon.DaemonHandle | None = None
    facts: handoff.NetFacts = field(default_factory=handoff.NetFacts)
    cmdline: cmdmerge.Merged | None = None  # the baked line under the kernel's
    chain: chain.ChainTarget | None = None  # mosinit=chain and a distro /init found


def _set_devkmsg(value: str) -> str | None:
    """Set the kernel's /dev/kmsg rate limit; return the old value.

    The default limit drops all but ~10 lines per 5 s from user space, which
    would eat most of the boot log. The real system gets its value back.
    """
    try:
        with open(DEVKMSG) as f:
            old = f.read().strip()
        if old != value:
            with open(DEVKMSG, "w") as f:
                f.write(value + "\n")  # the kernel insists on the newline
        return old
    except OSError:
        return None


GUEST_MODULES = ("veth", "tun")
# Parameters a distro initramfs acts on too (dracut: all; initramfs-tools: ip=).
DISTRO_NET_KEYS = frozenset({"ip", "bond", "vlan", "ifname", "rd.neednet"})


def uplink_modules(net: NetConfig) -> tuple[str, ...]:
    """bond= and vlan= need their drivers before the link stack is built."""
    return ("bonding",) * bool(net.bonds) + ("8021q",) * bool(net.vlans)


def load_drivers(state: BootState) -> None:
    kver = os.uname().release
    index = modindex.ModuleIndex.for_image(kver)
    modules.install_helper()
    loader = modules.Loader(index)
    modules.coldplug(loader)
    # Guests hang off br-mosnet through veth and tap devices; a netbooted
    # root often has no module tree for this kernel, so load them while the
    # initramfs still has them.
    for name in GUEST_MODULES + uplink_modules(state.net):
        loader.load(name)
    chain.load_private_modules(loader, kver, modindex.PRIVATE_MODULES)
    state.modules_done = True


def bring_up_network(state: BootState) -> None:
    """Static mode from mosip4/mosip6/ip=, else DHCP; then the firewall. Never fatal."""
    state.network_done = True
    cfg, facts = state.cfg, state.facts
    if not state.net.network:
        if cfg.netroot is None and cfg.nfs is None and cfg.netroot_error is None:
            _log.info("ip=off or rd.neednet=0: no network; firewall only if asked for")
            facts.mode, facts.firewall = "off", phase.set_up_firewall(state.net)
            facts.firewall_requested = facts.firewall is not None
            return
        _log.warning("ip=off or rd.neednet=0, but the root is on the network: bringing it up")
    out = state.network = phase.bring_up(state.net, RUN_DIR, timings=state.timings)
    facts.hostname, facts.links = state.net.hostname, [str(a) for a in out.plan.links]
    facts.mode, facts.nic, facts.nic_reason = out.mode, out.uplink.nic, out.uplink.reason
    facts.nic_mac, facts.backend, facts.port = out.uplink.mac, out.backend, out.port
    facts.errors = list(out.errors)
    facts.firewall, facts.firewall_requested = out.firewall, out.firewall is not None


def mount_root(state: BootState) -> None:
    cfg = state.cfg
    if cfg.rootdelay:
        _log.info("rootdelay: waiting %d s", cfg.rootdelay)
        time.sleep(cfg.rootdelay)
    os.makedirs(NEW_ROOT, exist_ok=True)
    if cfg.netroot is not None or cfg.netroot_error is not None or cfg.nfs is not None:
        mount_net_root(state)
    else:
        dev = rootdev.wait_for(cfg.root, cfg.root_timeout)
        rootdev.mount_root(dev, NEW_ROOT, cfg.rootfstype, cfg.rootflags, cfg.readonly)
    state.root_mounted = True
    if state.network is not None:  # the real root's /etc/resolv.conf, when writable
        state.network.resolv.add_target(os.path.join(NEW_ROOT, "etc/resolv.conf"))


def mount_net_root(state: BootState) -> None:
    """mosroot= (HTTP image into RAM) or an NFS root; imported only when asked for."""
    cfg = state.cfg
    if cfg.netroot_error is not None:  # never fall back to another root silently
        raise bootcfg.NetRootRefused(f"mosroot= refused: {cfg.netroot_error}")
    if cfg.netroot is not None:
        from init import netroot

        source = netroot.fetch_and_mount(cfg.netroot, NEW_ROOT, cfg.readonly)
        state.root_source = source.as_dict()
    elif cfg.nfs is not None:
        from init import nfsroot

        nfsroot.mount_nfs(cfg.nfs, NEW_ROOT, cfg.readonly)


def start_daemon(state: BootState) -> None:
    """In chain mode the daemon always runs: it carries /run/mosnet into the real root.

    The daemon forks its watcher, which also keeps the OVS daemons alive.
    """
    chained, net = state.chain is not None, state.network
    has_duties = net is not None and (net.client is not None or net.proxy is not None)
    if state.daemon is not None or not (has_duties or chained):
        return
    state.daemon = daemon.spawn(net, chain=chained, run_dir=RUN_DIR)
    procs.reap_orphans()


def record_state(state: BootState, result: str, init: str | None = None) -> None:
    """state.json for the real system; never in the way of the boot."""
    cfg = state.cfg
    root = str(cfg.netroot.url) if cfg.netroot else str(cfg.nfs or cfg.root)
    boot = handoff.boot_section(state.timings, result, root, init or cfg.init)
    if state.cmdline is not None:
        boot["cmdline"] = cmdmerge.state_section(state.cmdline)
    if state.root_source is not None:
        boot["root_source"] = state.root_source
    handle, net = state.daemon, state.network
    proxy, v6 = (net.proxy, net.v6) if net is not None else (None, None)
    services = handoff.services_section(handle.pid if handle else None, proxy, v6)
    client = net.client if net is not None else None
    lease_clock = client.clock() if client is not None else None
    handoff.record(RUN_DIR, boot, state.facts, net.lease if net else None, lease_clock, services)


def keep_managers_off(state: BootState) -> None:
    """networkd/NetworkManager/ifupdown files in the /run the real root inherits."""
    f = state.facts
    written, errors = hand_off(f.nic, f.nic_mac, f.port, f.backend)
    f.coexist, f.errors = written, f.errors + errors
    _log.info("network managers kept off mosnet's links: %s", ", ".join(written) or "nothing")


def _hand_over(state: BootState, result: str, init: str | None = None) -> None:
    """Last words before the exec (switch_root or chain): timings, state.json, kmsg limit."""
    _log.info(
        "boot timings: %s", ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in state.timings.items())
    )
    pid1.guard(record_state, state, result, init)
    if state.devkmsg is not None:
        _set_devkmsg(state.devkmsg)


def do_switch_root(state: BootState) -> NoReturn:
    cfg = state.cfg
    plan = switchroot.preflight(NEW_ROOT, cfg.init)
    start_daemon(state)
    handle = state.daemon
    argv = [plan.init, *cfg.init_args]
    pid1.guard(keep_managers_off, state)
    _hand_over(state, "switch_root", plan.init)
    switchroot.execute(
        plan, argv, ENV,
        keep_fds=(handle.notify_fd,) if handle else (),
        before_exec=handle.announce_switch if handle else None,
        # state.json names the init that runs, also when a later one does.
        before_next_init=lambda path: record_state(state, "switch_root", path),
    )  # fmt: skip


def do_chain(state: BootState, target: chain.ChainTarget) -> NoReturn:
    """Exec the distro's /init as PID 1; if that fails, the next attempt switch_roots."""
    handle = state.daemon
    _hand_over(state, "chain", target.path)
    try:
        chain.execute(
            target,
            chain.init_argv(sys.argv, target.path),
            chain.init_env(os.environ),
            before_exec=handle.announce_switch if handle else None,
        )
    except chain.ChainFailed:
        state.chain = None
        if handle is not None:  # its pipe is closed: never write to that number again
            state.daemon = dataclasses.replace(handle, notify_fd=-1)
        raise


def boot_once(state: BootState) -> NoReturn:
    t = state.timings
    if not state.modules_done:
        with log.step(_log, "drivers", t):
            load_drivers(state)
    if not state.network_done:
        bring_up_network(state)
    if state.chain is not None:
        with log.step(_log, "daemon", t):
            start_daemon(state)
        do_chain(state, state.chain)
    if not state.root_mounted:
        with log.step(_log, "root", t):
            mount_root(state)
    with log.step(_log, "daemon", t):
        start_daemon(state)
    do_switch_root(state)


def fallback(state: BootState, reason: str, *, wiped: bool = False) -> NoReturn:
    """The end of the road: a shell if there is one to run, else halt."""
    _log.critical("FATAL: %s", reason)
    pid1.guard(record_state, state, f"fallback: {reason}")
    if wiped:  # no initramfs left: the new root's /bin/sh, if it has one
        pid1.guard(rescue.after_wipe)
    elif state.cfg.mosshell:
        _log.critical("mosshell: starting the emergency shell on the console")
        pid1.emergency_shell()
    else:
        _log.critical("add 'mosshell' to the kernel command line for an emergency shell")
    pid1.halt(reason)


def _setup(state: BootState) -> None:
    start = time.monotonic()
    pid1.install_signal_handlers()
    problems = mounts.mount_api()
    handoff.open_log(RUN_DIR)
    state.devkmsg = _set_devkmsg("on")
    kernel_line, read_problem = cmdsetup.read_kernel_line()
    # Echo to the console only when the kernel would not show kmsg info lines.
    log.setup(kmsg=True, console="/dev/console", stderr=False)
    if console.kernel_echoes_info(kernel_line.line):
        log.setup(kmsg=True, stderr=False)
    _log.info("mosnet-init starting as pid %d (uptime %.3f s)", os.getpid(), log.uptime())
    for problem in (*problems, *([read_problem] if read_problem else [])):
        _log.error("%s", problem)
    # Defaults baked into the image (build.sh --cmdline) under the kernel line.
    inp = cmdsetup.configure(kernel_line, _log)
    state.cmdline, state.cfg, state.net = inp.merged, inp.boot, inp.net
    _log.info("%s", cmdsetup.describe(inp))
    state.chain = chain.requested_target(state.cfg.chain)
    shared = sorted({p.key for p in inp.merged.line.params if p.key in DISTRO_NET_KEYS})
    if state.chain is not None and shared:
        _log.warning(
            "chain mode: %s stay in /proc/cmdline for the distro's init; initramfs-tools acts "
            "on ip= (NFS roots, dropbear, iSCSI) and dracut on all of them, and would configure "
            "the NICs again; use mosip4=/mosip6= or DHCP mode, and no bond=/vlan=/ifname=",
            ", ".join(f"{k}=" for k in shared),
        )
    state.timings["setup"] = time.monotonic() - start


def main() -> NoReturn:
    state = BootState(bootcfg.BootConfig())  # defaults until the command line is read
    pid1.guard(_setup, state)
    reason, wiped = "unknown", False
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = pid1.guard(boot_once, state)
        reason = f"{type(result).__name__}: {result}"
        wiped = isinstance(result, switchroot.SwitchRootFailed)
        if wiped:
            break  # the initramfs is gone: nothing left to retry with
        if attempt < MAX_ATTEMPTS:
            _log.error(
                "boot attempt %d/%d failed (%s); retrying in %.0f s",
                attempt,
                MAX_ATTEMPTS,
                reason,
                RETRY_DELAY,
            )
            with contextlib.suppress(BaseException):
                time.sleep(RETRY_DELAY)
                procs.reap_orphans()
    fallback(state, reason, wiped=wiped)
