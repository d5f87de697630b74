"""The pure parts of bench/: statistics, tables, the PNG writer, log parsing."""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import pytest

from bench import native_phases, pngchart, probe_nics, run, stats


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


def test_png_encoding_round_trips() -> None:
    rgb = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])  # 2x2
    chunks = _png_chunks(pngchart.encode_png(2, 2, rgb))
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (2, 2, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert raw == b"\0" + rgb[:6] + b"\0" + rgb[6:]
    with pytest.raises(ValueError):
        pngchart.encode_png(3, 2, rgb)


def test_canvas_text_and_clipping() -> None:
    c = pngchart.Canvas(20, 10)
    c.rect(-5, -5, 8, 8, pngchart.RED)  # clipped, no error
    assert c.get(0, 0) == pngchart.RED and c.get(3, 3) == pngchart.WHITE
    c.text(10, 1, "1", pngchart.BLACK)
    assert c.get(12, 1) == pngchart.BLACK  # the top of the "1" stem (0x04: third column)
    assert pngchart.glyph("a") == pngchart.glyph("A")
    assert pngchart.glyph("\u2603") == pngchart.glyph("?")
    assert pngchart.text_width("abc", 2) == 34


def test_bars_are_proportional() -> None:
    lay = pngchart.Layout()
    panel = pngchart.Panel("t", [pngchart.Bar("a", 100.0), pngchart.Bar("b", 50.0, 40.0, 60.0)])
    data = pngchart.render([panel], "title", lay)
    assert _png_chunks(data)[0][0] == b"IHDR"
    (_, _, wa, _), (_, _, wb, _) = lay.bars_drawn
    assert wa == pytest.approx(2 * wb, abs=1)


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
    phases = native_phases.mosnet_phases(0, int(4800 * 1e6), lines)
    assert list(phases) == list(native_phases.PHASE_NAMES)
    assert phases["imports"] == 400 and phases["arp probe"] == 1000
    assert phases["ipv6 ra"] == 3000 and phases["switch_root"] == 17
    assert sum(v for v in phases.values() if v is not None) == pytest.approx(4800)
    # a missing line folds its phase into the next one; the sum stays the total
    without = [ln for ln in lines if "gratuitous" not in ln[1]]
    folded = native_phases.mosnet_phases(0, int(4800 * 1e6), without)
    assert folded["announce"] is None and folded["ipv6 ra"] == 3210
    assert sum(v for v in folded.values() if v is not None) == pytest.approx(4800)


def test_kmsg_and_stamp_parsing() -> None:
    rec = b"6,1234,5000123,-;mosnet: drivers done in 5 ms\n SUBSYSTEM=x\n"
    assert native_phases.parse_kmsg(rec) == (5000123000, "mosnet: drivers done in 5 ms")
    assert native_phases.parse_kmsg(b"garbage") is None
    assert native_phases.mosnet_lines([(1, "mosnet: a"), (2, "eth0: b")]) == [(1, "a")]
    out = "udhcpc: started\nBN7 exec 100\nBN7 init 250\nBN7 init 999\n"
    assert native_phases.parse_stamps(out) == {"exec": 100, "init": 250}


def test_probe_summary_and_sequential_model() -> None:
    assert probe_nics.sequential_model(1, 1100.0) == 1100.0
    assert probe_nics.sequential_model(8, 1100.0, 10.0) == 71100.0
    samples: dict[int, list[dict[str, Any]]] = {
        1: [{"probe_ms": 20.0, "lease_ms": 1000.0}, {"probe_ms": 22.0, "lease_ms": 1010.0}],
        8: [{"probe_ms": 100.0, "lease_ms": 1100.0}, {"error": "no lease"}],
    }
    section = probe_nics.summarize(samples, 2)
    assert section["nics"]["8"]["failures"] == 1
    assert section["lease_ratio_vs_1"]["8"] == pytest.approx(1100 / 1005, abs=1e-3)
    assert section["sequential_model_ms"]["8"] == 70000 + 1005
    rows = probe_nics.report(section).splitlines()
    assert rows[4].startswith("8") and rows[4].endswith("meets target")


def test_results_merge_keeps_other_benchmarks() -> None:
    old = {"qemu_boot": {"x": 1}, "native_boot": {"old": True}}
    assert run.merge(old, {"native_boot": {"new": True}}) == {
        "qemu_boot": {"x": 1},
        "native_boot": {"new": True},
    }
