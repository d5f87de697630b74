"""The pure parts of bench/proxy/figures.py: pacing schedule, percentiles, loss, verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from bench.proxy import figures as pr
from bench.proxy import variants


def test_plan_steps_paces_each_rate_for_the_step_duration() -> None:
    steps = pr.plan_steps([10000, 1000, 2000, 1000], 2.0)
    assert [s.rate for s in steps] == [1000, 2000, 10000]  # ascending, no duplicates
    assert [s.count for s in steps] == [2000, 4000, 20000]
    # the flooder stops after the nominal time plus 10 %, even if it fell behind
    assert all(s.max_s == pytest.approx(2.2) for s in steps)


def test_plan_steps_caps_the_count_and_rejects_nonsense() -> None:
    (step,) = pr.plan_steps([50000], 2.0, max_count=30000)
    assert step.count == 30000 and step.max_s == pytest.approx(0.66)
    assert pr.plan_steps([1], 0.1)[0].count == 1  # at least one request
    with pytest.raises(ValueError):
        pr.plan_steps([0], 1.0)
    with pytest.raises(ValueError):
        pr.plan_steps([1000], 0.0)


def test_percentile_is_nearest_rank() -> None:
    xs = [float(x) for x in range(1, 101)]  # 1..100
    assert pr.percentile(xs, 50) == 50.0
    assert pr.percentile(xs, 99) == 99.0
    assert pr.percentile(xs, 100) == 100.0
    assert pr.percentile(xs, 0) == 1.0
    assert pr.percentile([7.0], 99) == 7.0
    assert pr.percentile([1.0, 2.0, 3.0], 99) == 3.0  # a value that occurred, never beyond
    with pytest.raises(ValueError):
        pr.percentile([], 50)
    with pytest.raises(ValueError):
        pr.percentile(xs, 101)


def test_step_figures_count_loss_and_latency_of_answered_only() -> None:
    ms = 1_000_000
    lat = [1 * ms] * 98 + [-1, 5 * ms]  # one lost, one slow
    f = pr.step_figures(lat, send_s=0.1, planned=100)
    assert (f["sent"], f["answered"], f["lost"]) == (100, 99, 1)
    assert f["loss_pct"] == 1.0
    assert f["replies_per_s"] == 990.0
    assert f["offered_per_s"] == 1000.0
    assert f["p50_ms"] == 1.0
    assert f["p99_ms"] == 5.0  # rank ceil(0.99 x 99) = 99 of 99 answered: the slow one
    assert f["max_ms"] == 5.0
    assert f["short"] is False


def test_step_figures_without_answers_and_short_floods() -> None:
    f = pr.step_figures([-1] * 50, send_s=0.05, planned=100)
    assert (f["answered"], f["loss_pct"], f["replies_per_s"]) == (0, 100.0, 0.0)
    assert "p99_ms" not in f
    assert f["short"] is True  # the flooder sent half of the plan


def _steps(losses: dict[int, float], short: tuple[int, ...] = ()) -> dict[int, dict[str, Any]]:
    return {r: {"loss_pct": loss, "lost": round(loss * r / 100), "short": r in short}
            for r, loss in losses.items()}  # fmt: skip


def test_sustained_is_the_highest_step_under_one_percent_loss() -> None:
    steps = _steps({1000: 0.0, 2000: 0.5, 5000: 1.0, 10000: 40.0})
    assert pr.sustained(steps) == 2000  # 1.0 % is not under 1 %
    assert pr.sustained(_steps({1000: 5.0})) is None
    # a step the flooder could not offer does not count
    assert pr.sustained(_steps({1000: 0.0, 2000: 0.0}, short=(2000,))) == 1000


def test_loss_below_sums_the_lower_steps() -> None:
    steps = _steps({1000: 0.0, 2000: 0.5, 5000: 2.0})
    assert pr.loss_below(steps, 2000) == 10
    assert pr.loss_below(steps, 1999) == 0
    assert pr.loss_below(steps, 5000) == 110


def test_median_steps_take_the_median_figure_and_total_counts() -> None:
    rounds = [
        {"sent": 100, "answered": 100, "lost": 0, "loss_pct": 0.0, "p99_ms": 1.0},
        {"sent": 100, "answered": 90, "lost": 10, "loss_pct": 10.0, "p99_ms": 3.0},
        {"sent": 100, "answered": 99, "lost": 1, "loss_pct": 1.0, "p99_ms": 2.0, "short": True},
    ]
    m = pr.median_steps(rounds)
    assert (m["loss_pct"], m["p99_ms"]) == (1.0, 2.0)
    assert (m["sent"], m["lost"], m["rounds"]) == (300, 11, 3)
    assert m["short"] is True


def test_policy_cap_is_burst_plus_rate_times_time() -> None:
    lim = pr.DEFAULT_LIMITS
    assert pr.policy_cap(3.0, True, lim) == 20 + 5 * 3  # one requester: its own bucket
    assert pr.policy_cap(3.0, False, lim) == 200 + 100 * 3  # many: the global bucket


def test_verdicts_ratio_and_p99_against_the_kernel() -> None:
    def fam(sust: int, steps: dict[int, dict[str, Any]]) -> dict[str, Any]:
        return {"sustained_per_s": sust, "steps": {str(r): s for r, s in steps.items()}}

    kernel = {"families": {f: fam(100000, {100000: {}}) for f in variants.FAMILIES}}
    ok10k = {"lost": 0, "loss_pct": 0.0, "p99_ms": 1.5}
    slow10k = {"lost": 0, "loss_pct": 0.0, "p99_ms": 2.5}
    mosnet = {"families": {
        "arp": fam(50000, {10000: ok10k, 50000: {"lost": 3}}),
        "ns": fam(20000, {10000: slow10k, 20000: {"lost": 0}}),
    }}  # fmt: skip
    v = pr.verdicts({"kernel": kernel, "mosnet": mosnet})
    assert v["arp"]["ratio"] == 0.5 and v["arp"]["ratio_ok"] is True
    assert v["arp"]["lost_below_half_kernel"] == 3
    assert v["arp"]["p99_ok"] is True
    assert v["arp"]["kernel_at_top_step"] is True
    assert v["ns"]["ratio"] == 0.2 and v["ns"]["ratio_ok"] is False
    assert v["ns"]["p99_ok"] is False


def test_proc_cpu_reads_utime_and_stime_past_a_comm_with_spaces() -> None:
    stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 123"
    assert pr.proc_cpu_s(stat) == 3.0


def test_cpu_figures_cores_and_cost_per_answer() -> None:
    assert pr.cpu_figures(0.5, 2.0, 10000) == {
        "mosnet_cores": 0.25,
        "mosnet_cpu_us_per_answer": 50.0,
    }
    assert pr.cpu_figures(0.5, 0.0, 0) == {}  # nothing to divide by
