"""Proxy rate, report: the text tables and the chart panels of a results section."""

from __future__ import annotations

from typing import Any

from bench.common import chart, stats
from bench.proxy.figures import TARGET_P99_MS, TARGET_P99_RATE, TARGET_RATIO
from bench.proxy.variants import FAMILIES, REFERENCE, SUBJECT


def report(section: dict[str, Any]) -> str:
    variants: dict[str, Any] = section.get("variants", {})
    out = [f"proxy rate: a peer floods ARP requests / NS for one address "
           f"({section.get('runs')} round(s), median per step)"]  # fmt: skip
    for fam in FAMILIES:
        name = "ARP (IPv4)" if fam == "arp" else "NS (IPv6)"
        out += ["", name, stats.table(
            ["answered by", "rate/s", "offered/s", "sent", "lost", "loss", "replies/s",
             "p50 ms", "p99 ms", "cores", "cpu us/answer"], _step_rows(variants, fam))]  # fmt: skip
    out += [
        "",
        "sustained = highest step with < 1 % loss (median of the rounds); (short): the "
        "flooder sent < 90 % of the plan; cores, cpu us/answer: mosnet's CPU time (all "
        "threads) per second of the step and per answer",
    ]
    out += [_verdict_line(fam, v) for fam, v in section.get("verdict", {}).items()]
    out += _policy_lines(variants)
    for v in variants.values():
        first = (v.get("proxy_counters") or [{}])[0]
        if first:
            text = "; ".join(f"{fam}: {line}" for fam, line in first.items())
            out.append(f"proxy counters, {v['label']} (round 1, all steps): {text}")
    dec = section.get("decide_us", {})
    if dec:
        out.append(f"pure-Python work per frame, no sockets: proxy.decide ARP {dec.get('arp')} us, "
                   f"NS {dec.get('ns')} us; rate limiter {dec.get('limiter')} us")  # fmt: skip
    delay = section.get("kernel_default_proxy_delay_user_hz", {})
    if delay:
        out.append(f"kernel default proxy_delay: {delay} (1/100 s)")
    return "\n".join(out)


def _step_rows(variants: dict[str, Any], fam: str) -> list[list[object]]:
    """One row per variant and rate of family ``fam``; the label on the first only."""
    rows: list[list[object]] = []
    for key, v in variants.items():
        steps = v.get("families", {}).get(fam, {}).get("steps", {})
        for rate, s in steps.items():
            rows.append([
                v.get("label", key) if rate == next(iter(steps)) else "",
                f"{rate} (short)" if s.get("short") else int(rate), s.get("offered_per_s"),
                s.get("sent"), s.get("lost"), _pct(s.get("loss_pct")), s.get("replies_per_s"),
                _ms(s.get("p50_ms")), _ms(s.get("p99_ms")), s.get("mosnet_cores"),
                s.get("mosnet_cpu_us_per_answer"),
            ])  # fmt: skip
    return rows


def _verdict_line(fam: str, v: dict[str, Any]) -> str:
    ks, ms = v.get("kernel_sustained"), v.get("mosnet_sustained")
    top = " (the top step: the kernel lost nothing the flooder offered)" \
        if v.get("kernel_at_top_step") else ""  # fmt: skip
    ratio = v.get("ratio")
    line = (f"{fam}: mosnet {ms}/s vs kernel {ks}/s{top}: ratio "
            f"{'-' if ratio is None else f'{ratio:.3f}'} (target >= {TARGET_RATIO:g}: "
            f"{'meets' if v.get('ratio_ok') else 'misses'})")  # fmt: skip
    if "lost_below_half_kernel" in v:
        line += f", lost below {TARGET_RATIO:g}x kernel: {v['lost_below_half_kernel']}"
    if "p99_ms_at_10k" in v:
        line += (f"; p99 at 10k/s {v['p99_ms_at_10k']:.3f} ms, loss "
                 f"{v['loss_pct_at_10k']:.2f} % (target <= {TARGET_P99_MS:g} ms: "
                 f"{'meets' if v.get('p99_ok') else 'misses'})")  # fmt: skip
    return line


def _policy_lines(variants: dict[str, Any]) -> list[str]:
    """The policy variants: answers per family against what the default limits allow."""
    out = []
    for v in variants.values():
        if "expected_cap" in v:
            got = [v["families"][f]["steps"] for f in FAMILIES if f in v["families"]]
            answered = [max((s["answered"] / max(s["rounds"], 1)) for s in g.values())
                        for g in got if g]  # fmt: skip
            out.append(f"policy {v['label']}: answered {', '.join(f'{a:.0f}' for a in answered)}"
                       f" (arp, ns) in {v['seconds']:g} s; limits allow <= "
                       f"{v['expected_cap']:.0f}")  # fmt: skip
    return out


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.2f}%"


def _ms(v: float | None) -> str | None:
    return None if v is None else f"{v:.3f}"


def panels(section: dict[str, Any]) -> list[chart.Panel]:
    variants: dict[str, Any] = section.get("variants", {})
    out = []
    for fam in FAMILIES:
        bars = []
        for i, key in enumerate((REFERENCE, SUBJECT, "mosnet-loop")):
            v = variants.get(key, {}).get("families", {}).get(fam)
            if not v:
                continue
            ks = v.get("sustained_per_s")
            bars.append(chart.Bar(f"{key} sustained", (ks or 0) / 1000,
                                     color=chart.PALETTE[i], note="k/s"))  # fmt: skip
        ref = variants.get(REFERENCE, {}).get("families", {}).get(fam, {}).get("sustained_per_s")
        name = "ARP" if fam == "arp" else "NS"
        out.append(chart.Panel(
            f"Proxy {name}: sustained rate, < 1 % loss", bars, unit="k req/s",
            target=ref / 1000 * TARGET_RATIO if ref else None,
            target_label=f"{TARGET_RATIO:g}x kernel", digits=0))  # fmt: skip
    bars = []
    for fam in FAMILIES:
        for i, key in enumerate((REFERENCE, SUBJECT)):
            s = variants.get(key, {}).get("families", {}).get(fam, {}).get("steps", {})
            at = s.get(str(TARGET_P99_RATE), {})
            if "p99_ms" in at:
                bars.append(chart.Bar(f"{fam} {key} p99 at 10k/s", at["p99_ms"],
                                         color=chart.PALETTE[i]))  # fmt: skip
    if bars:
        out.append(chart.Panel("Proxy reply latency p99 at 10k req/s", bars,
                                  target=TARGET_P99_MS, target_label="2 ms target",
                                  digits=2))  # fmt: skip
    return out
