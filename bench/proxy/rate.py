"""Proxy rate and latency: mosnet's ARP/NDP proxy against the kernel's, at rising rates.

Two namespaces joined by a veth (``bp7-p-*`` holds the proxy, ``bp7-q-*`` the
peer; 10.231.7.0/24 and fd00:231:7::/64 only). A small C program in the peer
(``bench/proxy/flood.c``, compiled at bench time into ``.cache/bench``) sends ARP
requests or Neighbor Solicitations for one proxied address at a fixed pace,
each from a different sender MAC, and stamps each request and its answer with
CLOCK_MONOTONIC on one AF_PACKET socket. A step is one rate for at most
``STEP_S`` seconds; per step: sent, answered, loss, replies/s, p50/p99.

Who answers in the proxy namespace, one at a time:

* ``kernel``: the reference, ``proxy_arp=1`` with a route for the address
  through another device, ``proxy_ndp=1`` with ``ip -6 neigh add proxy``,
  both with ``proxy_delay=0`` (answer at once);
* ``kernel-delay``: the same with the kernel's default ``proxy_delay``
  (0.8 s: broadcast and multicast requests are queued, at most ``proxy_qlen``
  = 64 of them, and answered after a random delay); a few rates, for scale;
* ``mosnet``: ``mosnet.daemon.proxyproc.child_main``, the proxy process as the
  daemon forks it (announcements, the NDP relay thread, ``proxyd.run``),
  with the rate limits lifted; the target ratio uses this one;
* ``mosnet-loop``: ``proxyd.run`` alone (no relay thread), limits lifted:
  shows what the relay thread costs;
* ``mosnet-policy``: ``child_main`` unchanged, default limits (per requester
  5/s burst 20, global 100/s burst 200): the cap is the policy, measured
  with one requester MAC and with a new requester MAC per request.

The only change made to what the daemon runs is the limits:
``proxyd.run`` is wrapped with ``functools.partial(limits=...)`` in the
subprocess before ``child_main`` calls it.

The parts: ``variants`` (rates, who answers), ``lab`` (namespaces,
proxies, flooder), ``figures`` (per step, medians, verdicts), ``report``.

usage: .venv/bin/python bench/proxy/rate.py [--runs N] [--profile DIR]   (as root)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.proxy.figures import plan_steps, summarize  # noqa: E402
from bench.proxy.lab import ProxyLab  # noqa: E402
from bench.proxy.report import panels, report  # noqa: E402
from bench.proxy.variants import FAMILIES, VARIANTS, Variant  # noqa: E402

__all__ = ["KEY", "MAX_ROUNDS", "main", "panels", "report", "run"]

KEY = "proxy_rate"
PAUSE_S = 0.3  # between steps: queues drain
MAX_ROUNDS = 3  # rounds = min(--runs, MAX_ROUNDS): a round is ~3 minutes


def _run_variant(lab: ProxyLab, v: Variant, log: Callable[[str], None]) -> dict[str, Any]:
    """All families and rates of one variant: {family: {rate: figures}}.

    mosnet starts afresh for each family: the limiter's buckets (the policy
    runs) must not carry over from the other family's flood.
    """
    out: dict[str, Any] = {}
    for fam in FAMILIES:
        out[fam] = {}
        if v.answerer == "kernel":
            lab.kernel(True, delay=v.kernel_delay)
        else:
            lab.kernel(False)
            lab.start_mosnet(v.answerer, f"{v.key}-{fam}")
        try:
            for step in plan_steps(v.rates, v.seconds):
                fig = lab.flood_step(fam, step, v.settle_ms, v.one_requester)
                out[fam][step.rate] = fig
                log(f"    {v.key} {fam} {step.rate}/s: {_brief(fig)}")
                time.sleep(PAUSE_S)
        finally:
            if v.answerer == "kernel":
                lab.kernel(False)
            else:
                out.setdefault("counters", {})[fam] = lab.stop_mosnet()
    return out


def _brief(f: dict[str, Any]) -> str:
    lat = f"p50 {f['p50_ms']:.3f} p99 {f['p99_ms']:.3f} ms" if "p50_ms" in f else "no answer"
    short = ", flooder short" if f.get("short") else ""
    return (f"{f['answered']}/{f['sent']} answered, loss {f['loss_pct']:.2f} %, "
            f"{f['replies_per_s'] or 0:.0f}/s, {lat}{short}")  # fmt: skip


def run(
    runs: int, log: Callable[[str], None] = print, profile: Path | None = None
) -> dict[str, Any]:
    """min(runs, MAX_ROUNDS) rounds; the variants rotate each round."""
    if os.geteuid() != 0:
        raise RuntimeError("the proxy bench needs root (network namespaces)")
    if shutil.which("gcc") is None or shutil.which("nsenter") is None:
        raise RuntimeError("the proxy bench needs gcc and nsenter")
    rounds = max(1, min(runs, MAX_ROUNDS))
    work = Path(tempfile.mkdtemp(prefix="bp7-proxy-"))
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    lab = ProxyLab(work, log, profile)
    raw: dict[str, list[dict[str, Any]]] = {v.key: [] for v in VARIANTS}
    try:
        lab.setup()
        for i in range(rounds):
            k = i % len(VARIANTS)
            for v in VARIANTS[k:] + VARIANTS[:k]:
                log(f"  round {i + 1}/{rounds}: {v.label}")
                raw[v.key].append(_run_variant(lab, v, log))
        delays = dict(lab.default_delay)
        decide_us = lab.decide_cost()
        log(f"  proxy.decide in pure Python (us per call): {decide_us}")
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    section = summarize(raw, rounds, delays)
    section["decide_us"] = decide_us
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=MAX_ROUNDS)
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    p.add_argument(
        "--profile", type=Path, help="cProfile each mosnet proxy into DIR/<variant>.prof"
    )
    args = p.parse_args(argv)
    section = run(args.runs, profile=args.profile)
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
