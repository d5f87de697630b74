"""Multi-NIC probe: time to a lease with 1, 4 and 8 NICs, only the last one served.

One client namespace holds eight veth NICs (``nic1`` .. ``nic8``, all up);
their peers sit in a server namespace where only ``nic8``'s peer has dnsmasq.
A run with N NICs hands the last N of them to ``mosnet.uplink.offers.probe``
(DISCOVER on all at once) and then REQUESTs the lease on the winner with
``mosnet.dhcp4.client.Client`` (which ARP-probes the address, as at boot).
Times are taken inside the measuring process, so Python's start is not in them.

The Rust original probes one NIC after another with ``mosdhcp_timeout`` (10 s)
per NIC, so N NICs of which only the last has a server cost (N-1) x timeout
plus the one-NIC time; that model is printed next to the measurement.

usage: .venv/bin/python bench/probe/nics.py [--runs N]   (as root)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.common import chart, netlab, stats  # noqa: E402

TOP = Path(__file__).resolve().parents[2]
PY = str(TOP / ".venv" / "bin" / "python") if (TOP / ".venv").exists() else sys.executable
COUNTS = (1, 4, 8)
TIMEOUT = 10.0  # mosdhcp_timeout's default, in mosnet and in the Rust original
TARGET_RATIO = 1.2
NET = "10.231.2"
KEY = "probe_nics"

MEASURE = textwrap.dedent("""
    import json, sys, time
    from mosnet.uplink import offers
    from mosnet.dhcp4.client import Client
    names, timeout = sys.argv[1].split(","), float(sys.argv[2])
    t0 = time.monotonic()
    res = offers.probe(names, timeout=timeout, prefer_private=True)
    t1 = time.monotonic()
    lease = None
    if res is not None:
        client = Client(res.ifname)
        try:
            lease = client.acquire(timeout)
        finally:
            client.close()
    t2 = time.monotonic()
    print(json.dumps({
        "probe_ms": (t1 - t0) * 1000, "lease_ms": (t2 - t0) * 1000 if lease else None,
        "ifname": res.ifname if res else None, "address": str(lease.address) if lease else None,
    }))
""")


def sequential_model(n: int, one_nic_ms: float, timeout_s: float = TIMEOUT) -> float:
    """The Rust original: each of the N-1 silent NICs costs a whole timeout first."""
    return (n - 1) * timeout_s * 1000 + one_nic_ms


class ProbeBench:
    def __init__(self, workdir: Path) -> None:
        self.lab = netlab.Lab(workdir)
        tag = netlab.tag()
        self.srv = f"bn7-ps-{tag}"
        self.client = f"bn7-pc-{tag}"
        self.nics = [f"nic{k}" for k in range(1, max(COUNTS) + 1)]
        self.peers = [f"b7{tag}s{k}" for k in range(1, max(COUNTS) + 1)]

    def setup(self) -> None:
        lab = self.lab
        lab.netns(self.srv)
        lab.netns(self.client)
        for k, (nic, peer) in enumerate(zip(self.nics, self.peers, strict=True), 1):
            lab.veth(self.client, nic, self.srv, peer, a_mac=f"02:b7:00:00:01:{k:02x}")
            netlab.ip("-n", self.client, "link", "set", nic, "up")
        netlab.ip("-n", self.srv, "addr", "add", f"{NET}.1/24", "dev", self.peers[-1])
        lab.dnsmasq(self.srv, self.peers[-1], NET, name="dnsmasq-probe")

    def measure(self, n: int) -> dict[str, Any]:
        names = ",".join(self.nics[-n:])
        res = subprocess.run(
            ["ip", "netns", "exec", self.client, PY, "-c", MEASURE, names, str(TIMEOUT)],
            env=dict(os.environ, PYTHONPATH=str(TOP)),
            capture_output=True,
            text=True,
            timeout=3 * TIMEOUT + 30,
        )
        if res.returncode != 0:
            return {"error": (res.stderr.strip().splitlines() or ["?"])[-1]}
        out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
        if out.get("ifname") != self.nics[-1] or out.get("lease_ms") is None:
            out["error"] = f"no lease on {self.nics[-1]}: {out}"
        return out

    def close(self) -> None:
        self.lab.close()


def run(runs: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise RuntimeError("the probe bench needs root (network namespaces)")
    work = Path(tempfile.mkdtemp(prefix="bn7-probe-"))
    b = ProbeBench(work)
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in COUNTS}
    try:
        b.setup()
        for n in COUNTS:
            log(f"  warm-up {n} NIC(s): {_brief(b.measure(n))}")
        for i in range(runs):
            k = i % len(COUNTS)
            for n in COUNTS[k:] + COUNTS[:k]:
                r = b.measure(n)
                samples[n].append(r)
                log(f"  run {i + 1}/{runs} {n} NIC(s): {_brief(r)}")
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)
    return summarize(samples, runs)


def _brief(r: dict[str, Any]) -> str:
    if r.get("error"):
        return str(r["error"])
    return f"probe {r['probe_ms']:.1f} ms, lease {r['lease_ms']:.0f} ms"


def summarize(samples: dict[int, list[dict[str, Any]]], runs: int) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for n, rs in samples.items():
        good = [r for r in rs if not r.get("error")]
        entry: dict[str, Any] = {"runs": len(rs), "failures": len(rs) - len(good)}
        errors = sorted({str(r["error"]) for r in rs if r.get("error")})
        if errors:
            entry["errors"] = errors[:3]
        if good:
            entry["probe_ms"] = stats.summarize([r["probe_ms"] for r in good]).to_json(2)
            entry["lease_ms"] = stats.summarize([r["lease_ms"] for r in good]).to_json(1)
        counts[str(n)] = entry
    section: dict[str, Any] = {
        "machine": stats.machine(),
        "runs": runs,
        "timeout_s": TIMEOUT,
        "target_ratio": TARGET_RATIO,
        "nics": counts,
    }
    one = counts.get("1", {}).get("lease_ms")
    one_probe = counts.get("1", {}).get("probe_ms")
    if one:
        ratios, probe_ratios, model = {}, {}, {}
        for key, entry in counts.items():
            if "lease_ms" not in entry:
                continue
            ratios[key] = round(stats.ratio(entry["lease_ms"]["median"], one["median"]), 3)
            if one_probe:
                r = stats.ratio(entry["probe_ms"]["median"], one_probe["median"])
                probe_ratios[key] = round(r, 2)
            model[key] = round(sequential_model(int(key), one["median"]), 1)
        section["lease_ratio_vs_1"] = ratios
        section["probe_ratio_vs_1"] = probe_ratios
        section["sequential_model_ms"] = model
    return section


def report(section: dict[str, Any]) -> str:
    counts: dict[str, Any] = section.get("nics", {})
    ratios = section.get("lease_ratio_vs_1", {})
    pratios = section.get("probe_ratio_vs_1", {})
    model = section.get("sequential_model_ms", {})
    target = float(section.get("target_ratio", TARGET_RATIO))
    rows = []
    for n, e in counts.items():
        if "lease_ms" not in e:
            rows.append([n, None, None, None, None, None, None, "failed"])
            continue
        lease, probe = e["lease_ms"], e["probe_ms"]
        r = ratios.get(n)
        rows.append([
            n, f"{probe['median']:.1f}", pratios.get(n), lease.get("median"),
            f"{lease['p25']:.0f}-{lease['p75']:.0f}", None if r is None else f"{r:.3f}",
            model.get(n), "" if r is None or n == "1" else stats.verdict(r, target),
        ])  # fmt: skip
    timeout = section.get("timeout_s", TIMEOUT)
    return "\n".join([
        f"multi-NIC probe: only the last NIC has a DHCP server ({section.get('runs')} runs, ms)",
        stats.table(["NICs", "probe", "x1", "to lease", "IQR", "x1 (lease)",
                     f"sequential {timeout:g} s/NIC", f"target <= {target:g}"], rows),
        "to lease = parallel probe + REQUEST/ACK + ARP probe (~1 s, the same for every N)",
        f"with N silent NICs mosnet waits {timeout:g} s once, a sequential probe N x {timeout:g} s",
    ])  # fmt: skip


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    counts: dict[str, Any] = section.get("nics", {})
    bars = []
    for n, e in counts.items():
        if "lease_ms" in e:
            lease = e["lease_ms"]
            r = section.get("lease_ratio_vs_1", {}).get(n)
            bars.append(chart.Bar(f"{n} NIC(s), parallel", lease["median"], lease["p25"],
                                     lease["p75"], note=f"\u00d7{r:.2f}" if r else ""))  # fmt: skip
    one = counts.get("1", {}).get("lease_ms")
    target = float(section.get("target_ratio", TARGET_RATIO))
    out = [
        chart.Panel(
            "Time to lease, only the last NIC served",
            bars,
            target=one["median"] * target if one else None,
            target_label=f"{target:g}x one NIC",
        )
    ]
    model = section.get("sequential_model_ms", {})
    if model:
        mbars = [chart.Bar(f"{n} NIC(s), parallel", counts[n]["lease_ms"]["median"] / 1000,
                              color=chart.PALETTE[0]) for n in model]  # fmt: skip
        mbars += [chart.Bar(f"{n} NIC(s), sequential", v / 1000, color=chart.PALETTE[1])
                  for n, v in model.items()]  # fmt: skip
        out.append(chart.Panel("Parallel vs sequential model", mbars, unit="s", digits=1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    args = p.parse_args(argv)
    section = run(args.runs)
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
