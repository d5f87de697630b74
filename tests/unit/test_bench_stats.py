"""The pure parts of bench/: statistics, tables, log parsing, the results chart."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from bench import run
from bench.common import chart, stats
from bench.native import phases
from bench.probe import nics


def test_quantiles_interpolate_like_numpy() -> None:
    xs = [4.0, 1.0, 3.0, 2.0]
    assert stats.median(xs) == 2.5
    assert stats.quantile(xs, 0.25) == pytest.approx(1.75)
    assert stats.quantile(xs, 0.75) == pytest.approx(3.25)
    assert stats.quantile([7.0], 0.9) == 7.0
    with pytest.raises(ValueError):
        stats.quantile([], 0.5)
    with pytest.raises(ValueError):
        stats.quantile(xs, 1.5)


def test_summary_spread_and_json() -> None:
    s = stats.summarize([10.0, 12.0, 11.0, 30.0, 9.0])
    assert (s.n, s.median, s.min, s.max) == (5, 11.0, 9.0, 30.0)
    assert (s.p25, s.p75) == (10.0, 12.0)
    assert s.iqr == 2.0 and s.rel_spread == pytest.approx(2 / 11)
    want = {"n": 5, "median": 11.0, "p25": 10.0, "p75": 12.0, "min": 9.0, "max": 30.0}
    assert s.to_json() == want
    assert s.text() == "11 [10-12]"


def test_ratio_and_verdict() -> None:
    assert stats.ratio(3.0, 1.5) == 2.0
    assert math.isinf(stats.ratio(1.0, 0.0))
    assert stats.verdict(3.0, 3.0) == "meets target"
    assert stats.verdict(3.01, 3.0) == "misses target"


def test_table_aligns_columns() -> None:
    text = stats.table(["name", "ms"], [["busybox", 95.0], ["mosnet", 2009.4], ["x", None]])
    lines = text.splitlines()
    assert lines[0] == "name       ms"
    assert lines[1] == "-------  ----"
    assert lines[2] == "busybox    95"
    assert lines[3] == "mosnet   2009"
    assert lines[4] == "x           -"
    assert stats.table(["r"], [[1.234]]).splitlines()[-1] == "1.2"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        pos += 12 + n
    return out


def _section() -> dict[str, Any]:
    """A small probe_nics section, as results.json holds it."""
    samples: dict[int, list[dict[str, Any]]] = {
        n: [
            {"probe_ms": 20.0 * n, "lease_ms": 1000.0 + n},
            {"probe_ms": 22.0 * n, "lease_ms": 1010.0},
        ]
        for n in (1, 4, 8)
    }
    return nics.summarize(samples, 2)


def test_chart_png_from_results(tmp_path: Path) -> None:
    out = tmp_path / "results.png"
    data = {"probe_nics": _section(), "other": {"machine": {"date": "d", "cores": 2}}}
    assert run.draw(data, out)
    png = out.read_bytes()
    chunks = _png_chunks(png)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    assert b"Software" not in png  # no version text: reruns give the same bytes
    width, height = struct.unpack(">II", chunks[0][1][:8])
    panels = nics.panels(data["probe_nics"])
    inches = 2 * chart.MARGIN_IN + chart.TITLE_IN + sum(map(chart.panel_height, panels))
    assert width == chart.WIDTH_IN * chart.DPI and abs(height - inches * chart.DPI) <= 1
    run.draw(data, tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == png
    assert not run.draw({"probe_nics": "not a section"}, tmp_path / "none.png")


def test_chart_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match="no panels"):
        chart.render([])
    nan = chart.Panel("t", [chart.Bar("a", 1.0), chart.Bar("b", math.nan)])
    with pytest.raises(ValueError, match="'b' is not a number"):
        chart.render([nan])
    spread = chart.Panel("t", [chart.Bar("a", 1.0, lo=math.nan, hi=2.0)])
    with pytest.raises(ValueError):
        chart.render([spread], "title")


def test_bars_are_proportional() -> None:
    panel = chart.Panel("t", [chart.Bar("a", 100.0), chart.Bar("b", 50.0, 40.0, 60.0)])
    empty = chart.Panel("nothing measured", [])
    fig = chart.figure([panel, empty], "title")
    assert len(fig.axes) == 1  # a panel without bars is only its title
    wa, wb = (_width(bar) for bar in fig.axes[0].patches)
    assert wa == pytest.approx(2 * wb)
    low, high = fig.axes[0].get_xlim()
    assert low == 0.0 and high == pytest.approx(105.0)  # the largest value + 5 %
    clipped = chart.figure([chart.Panel("t", [chart.Bar("a", 1.0), chart.Bar("b", math.inf)])])
    assert [_width(b) for b in clipped.axes[0].patches] == [1.0, 1.0]  # inf: the axis' end


def _width(patch: object) -> float:
    """A bar of barh is a Rectangle; ``patches`` is typed as any Patch."""
    from matplotlib.patches import Rectangle

    assert isinstance(patch, Rectangle)
    return float(patch.get_width())


def _lines(*pairs: tuple[float, str]) -> list[tuple[int, str]]:
    return [(int(ms * 1e6), text) for ms, text in pairs]


def test_mosnet_phases_add_up_to_the_total() -> None:
    lines = _lines(
        (400, "mosnet-init starting as pid 1 (uptime 1.0 s)"),
        (401, "drivers ... (uptime 1.0 s)"),
        (450, "drivers done in 49 ms"),
        (460, "DHCP probe: DISCOVER on eth0 at once (10.0 s in total, prefer private)"),
        (461, "DHCP probe: chose eth0 (10.0.0.5 from 10.0.0.1) after 0.00 s, 1 offer(s) seen"),
        (550, "plan applied: 15 actions"),
        (555, "dhcp4 mos: REQUESTING -> BOUND"),
        (1555, "dhcp4 mos: bound 10.0.0.5/24 from 10.0.0.1, lease 120 s"),
        (1765, "mos: gratuitous ARP for 10.0.0.5 at 02:00:00:00:00:01 (4 frames)"),
        (4765, "mos: IPv6 none, dns -"),
        (4780, "root done in 12 ms"),
        (4783, "daemon done in 3 ms"),
    )
    got = phases.mosnet_phases(0, int(4800 * 1e6), lines)
    assert list(got) == list(phases.PHASE_NAMES)
    assert got["imports"] == 400 and got["arp probe"] == 1000
    assert got["ipv6 ra"] == 3000 and got["switch_root"] == 17
    assert sum(v for v in got.values() if v is not None) == pytest.approx(4800)
    # a missing line folds its phase into the next one; the sum stays the total
    without = [ln for ln in lines if "gratuitous" not in ln[1]]
    folded = phases.mosnet_phases(0, int(4800 * 1e6), without)
    assert folded["announce"] is None and folded["ipv6 ra"] == 3210
    assert sum(v for v in folded.values() if v is not None) == pytest.approx(4800)


def test_kmsg_and_stamp_parsing() -> None:
    rec = b"6,1234,5000123,-;mosnet: drivers done in 5 ms\n SUBSYSTEM=x\n"
    assert phases.parse_kmsg(rec) == (5000123000, "mosnet: drivers done in 5 ms")
    assert phases.parse_kmsg(b"garbage") is None
    assert phases.mosnet_lines([(1, "mosnet: a"), (2, "eth0: b")]) == [(1, "a")]
    out = "udhcpc: started\nBN7 exec 100\nBN7 init 250\nBN7 init 999\n"
    assert phases.parse_stamps(out) == {"exec": 100, "init": 250}


def test_probe_summary_and_sequential_model() -> None:
    assert nics.sequential_model(1, 1100.0) == 1100.0
    assert nics.sequential_model(8, 1100.0, 10.0) == 71100.0
    samples: dict[int, list[dict[str, Any]]] = {
        1: [{"probe_ms": 20.0, "lease_ms": 1000.0}, {"probe_ms": 22.0, "lease_ms": 1010.0}],
        8: [{"probe_ms": 100.0, "lease_ms": 1100.0}, {"error": "no lease"}],
    }
    section = nics.summarize(samples, 2)
    assert section["nics"]["8"]["failures"] == 1
    assert section["lease_ratio_vs_1"]["8"] == pytest.approx(1100 / 1005, abs=1e-3)
    assert section["sequential_model_ms"]["8"] == 70000 + 1005
    rows = nics.report(section).splitlines()
    assert rows[4].startswith("8") and rows[4].endswith("meets target")


def test_results_merge_keeps_other_benchmarks() -> None:
    old = {"qemu_boot": {"x": 1}, "native_boot": {"old": True}}
    assert run.merge(old, {"native_boot": {"new": True}}) == {
        "qemu_boot": {"x": 1},
        "native_boot": {"new": True},
    }
