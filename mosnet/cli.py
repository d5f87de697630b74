"""``mosnet plan | apply | discover | status | coexist``: plan, executor, state, hand-off.

``plan`` prints the numbered actions, the rollback, notes and errors and
touches nothing (``--live`` only reads links). ``apply`` executes (root).
``discover`` lists the NICs and can save them as a fixture for ``--links``.
Command-line parameter errors are shown as notes: one bad ``mosfirewall=``
token must not keep the network down, so they do not block a plan.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence

from mosnet.base import log
from mosnet.base.errors import MosnetError
from mosnet.base.names import DHCP_PORT
from mosnet.config.cmdline import parse
from mosnet.dhcp4.lease import LeaseError, from_json
from mosnet.topology.plan import RESOLV_CONF, Plan, plan
from mosnet.uplink import nicfile
from mosnet.uplink.discover import Nic
from mosnet.uplink.linkstack import plan_links

LIVE_LEASE = f"/run/mosnet/lease-{DHCP_PORT}.json"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mosnet", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("plan", "print the actions, change nothing"),
        ("apply", "execute the plan (root)"),
    ):
        p = sub.add_parser(verb, help=text)
        src = p.add_mutually_exclusive_group()
        src.add_argument("--cmdline", metavar="TEXT", help="kernel parameters to use")
        src.add_argument(
            "--cmdline-file",
            metavar="F",
            default="/proc/cmdline",
            help="read them from F (default /proc/cmdline)",
        )
        links = p.add_mutually_exclusive_group()
        links.add_argument("--links", metavar="FIXTURE.json", help="NICs from a fixture")
        links.add_argument("--live", action="store_true", help="NICs from netlink (default)")
        p.add_argument("--chosen", metavar="NIC", help="the NIC the gateway/DHCP probe picked")
        p.add_argument("--resolv-conf", default=RESOLV_CONF, metavar="PATH")
        p.add_argument(
            "--lease", metavar="LEASE.json",
            help="DHCP mode: show this recorded lease's address and routes (default with live"
            " NICs: /run/mosnet/lease-mos.json if it exists)",
        )  # fmt: skip
        p.add_argument(
            "--ovs", choices=("auto", "yes", "no"), default="auto",
            help="is Open vSwitch available (auto: look on this system; no with --links)",
        )  # fmt: skip
        if verb == "apply":
            p.add_argument(
                "--fail-at",
                type=int,
                metavar="N",
                help="test hook: fail step N to exercise the rollback",
            )
    st = sub.add_parser("status", help="what mosnet set up at boot, and whether it still runs")
    st.add_argument("--json", action="store_true", help="for machines: state and checks")
    st.add_argument("--check", action="store_true", help="exit 1 if a check fails (monitoring)")
    st.add_argument("--run-dir", default="/run/mosnet", metavar="DIR", help=argparse.SUPPRESS)
    co = sub.add_parser(
        "coexist", help="keep networkd/NetworkManager/ifupdown off mosnet's links (root)"
    )
    co.add_argument("--print", action="store_true", help="show the files, write nothing")
    co.add_argument("--run-dir", default="/run/mosnet", metavar="DIR", help=argparse.SUPPRESS)
    co.add_argument("--run", default="/run", metavar="DIR", help=argparse.SUPPRESS)
    d = sub.add_parser("discover", help="list the NICs")
    d.add_argument("--json", action="store_true", help="print a links fixture")
    d.add_argument("--write", metavar="FIXTURE.json", help="save a links fixture")
    return ap


def _live_nics() -> tuple[Nic, ...]:
    from pyroute2 import IPRoute  # only here: plan/fixture paths stay netlink-free

    from mosnet.uplink.discover import list_nics

    with IPRoute() as ipr:
        return list_nics(ipr)


def _ovs_available(args: argparse.Namespace) -> bool:
    from mosnet.ovs import vswitch

    if args.ovs == "auto":  # a fixture describes another machine: not this one's OVS
        return not args.links and vswitch.available()
    return bool(args.ovs == "yes")


def build(args: argparse.Namespace) -> Plan:
    """The plan for the parsed ``plan``/``apply`` arguments (reads, never writes)."""
    text: str | bytes
    if args.cmdline is not None:
        text = args.cmdline
    else:
        with open(args.cmdline_file, "rb") as f:  # bytes, as PID 1 reads it
            text = f.read()
    parsed = parse(text)
    nics = nicfile.load(args.links) if args.links else _live_nics()
    stack = plan_links(parsed.config, nics)  # bonds and VLANs become the candidates
    result = plan(
        parsed.config, stack.uplinks, args.chosen, ovs_available=_ovs_available(args),
        resolv_conf=args.resolv_conf, links=stack,
    )  # fmt: skip
    extra = tuple(f"cmdline: {e}" for e in parsed.errors) + tuple(
        f"cmdline: {n}" for n in parsed.notes
    )
    result = _with_lease(result, args)
    return dataclasses.replace(result, notes=extra + result.notes)


def _with_lease(the_plan: Plan, args: argparse.Namespace) -> Plan:
    """The recorded lease's own actions instead of "request a lease" (DHCP mode)."""
    path = args.lease or (None if args.links else LIVE_LEASE)
    if the_plan.mode != "dhcp" or not the_plan.ok or path is None:
        return the_plan
    try:
        with open(path, encoding="utf-8") as f:
            lease = from_json(json.load(f))
    except FileNotFoundError:
        if args.lease:
            raise
        return the_plan
    except (ValueError, LeaseError) as exc:  # json's errors are ValueErrors
        raise MosnetError(f"{path}: not a lease: {exc}") from None
    return the_plan.with_lease(lease, DHCP_PORT, time.monotonic())


def _discover(args: argparse.Namespace) -> int:
    nics = _live_nics()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(nicfile.dumps(nics))
    if args.json:
        sys.stdout.write(nicfile.dumps(nics))
    else:
        for nic in nics:
            print(
                f"{nic.name:16} {nic.mac:17} {nic.driver or nic.kind or '-':10} "
                f"{nic.bus_path or '-'}"
            )
    return 0


def _coexist(args: argparse.Namespace) -> int:
    """The files PID 1 writes before switch_root, from state.json (again, or to look at)."""
    from mosnet.state import coexist, statefile

    links = coexist.from_state(statefile.load(args.run_dir).get("network") or {})
    if not links:
        print("mosnet coexist: state.json names no uplink: nothing to keep managers off")
        return 0
    if args.print:
        for rel, text in coexist.render(links).items():
            print(f"--- {args.run}/{rel}\n{text}", end="")
        return 0
    written, errors = coexist.write(links, args.run)
    for path in written:
        print(f"wrote {path}")
    for err in errors:
        print(f"mosnet coexist: {err}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log.setup(stderr=True)
    try:
        if args.verb == "discover":
            return _discover(args)
        if args.verb == "coexist":
            return _coexist(args)
        if args.verb == "status":
            from mosnet.state import status

            return status.main(args.run_dir, args.json, args.check)
        the_plan = build(args)
        sys.stdout.write(the_plan.render())
        if args.verb == "plan":
            return 0 if the_plan.ok else 1
        from mosnet.topology.netapply import apply_plan  # pyroute2 only when applying

        result = apply_plan(the_plan, fail_at=args.fail_at)
    except (OSError, MosnetError) as exc:
        print(f"mosnet: {exc}", file=sys.stderr)
        return 1
    if result.ok:
        print(f"applied: {result.done} actions")
        return 0
    print(f"failed after {result.done} actions; rolled back: {result.rolled_back}")
    for err in result.errors:
        print(f"  error: {err}")
    return 1
