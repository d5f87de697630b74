"""The pure parts of bench/footprint/figures.py: /proc text, console lines, idle figures."""

from __future__ import annotations

import pytest

from bench.footprint import figures as fp


def _stat(pid: int, comm: str, utime: int, stime: int) -> str:
    return f"{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 3 0 9"


def test_stat_ticks_sums_utime_and_stime_past_any_comm() -> None:
    assert fp.stat_ticks(_stat(7, "mosnet-init.bin", 120, 30)) == 150
    assert fp.stat_ticks(_stat(7, "a) b (c", 1, 2)) == 3  # comm with ") " inside
    with pytest.raises(ValueError):
        fp.stat_ticks("7 mosnet S 1")
    with pytest.raises(ValueError):
        fp.stat_ticks("7 (x) S 1 2 3")


def test_process_name_from_the_command_line() -> None:
    assert fp.process_name("@mosnet-daemon ") == "mosnet-daemon"
    assert fp.process_name("@mosnet-proxy") == "mosnet-proxy"
    assert fp.process_name("@ovs-vswitchd unix:/run/openvswitch/db.sock") == "ovs-vswitchd"
    assert fp.process_name("@somebody-else") is None
    assert fp.process_name("udhcpc -i mos -f -s /bin/true ") == "udhcpc"
    assert fp.process_name("/bin/busybox udhcpc -i mos") == "udhcpc"
    assert fp.process_name("sleep 86400 ") == "sleep"
    assert fp.process_name("sleep 60") is None
    assert fp.process_name("") is None


def _line(tag: str, pid: int, up: float, rss: int, ticks: int, cmd: str, thr: int = 2) -> str:
    return (f"FP {tag} {pid} up={up} rss={rss} thr={thr} pss={rss // 2} cmd={cmd} "
            f"stat={_stat(pid, 'x', ticks, 0)}")  # fmt: skip


def test_parse_samples_ignores_the_echo_of_the_typed_command() -> None:
    console = "\r\n".join([
        '/ # fp() { ... echo "F""P $1 ${d#/proc/} up=$(cut -d" " -f1 /proc/uptime) ...',
        _line("t0", 300, 100.5, 30000, 500, "@mosnet-daemon "),
        _line("t0", 301, 100.6, 20000, 100, "@mosnet-proxy "),
        "FP t1 garbage",
        _line("t1", 300, 160.5, 30100, 530, "@mosnet-daemon "),
    ])  # fmt: skip
    samples = fp.parse_samples(console)
    assert [(s.tag, s.pid) for s in samples] == [("t0", 300), ("t0", 301), ("t1", 300)]
    first = samples[0]
    assert (first.uptime, first.rss_kb, first.pss_kb, first.threads) == (100.5, 30000, 15000, 2)
    assert (first.cmdline, first.cpu_ticks) == ("@mosnet-daemon", 500)


def test_parse_samples_keeps_missing_fields_as_none() -> None:
    line = "FP t0 9 up=1.0 rss= thr= pss= cmd=@mosnet-proxy stat=" + _stat(9, "p", 1, 1)
    (s,) = fp.parse_samples(line)
    assert (s.rss_kb, s.threads, s.pss_kb) == (None, None, None)


def test_idle_figures_cpu_per_minute_and_a_restart() -> None:
    console = "\n".join([
        _line("t0", 300, 100.0, 30000, 500, "@mosnet-daemon"),
        _line("t0", 301, 100.0, 20000, 100, "@mosnet-proxy"),
        _line("t0", 400, 100.0, 900, 3, "udhcpc -i mos -f -s /bin/true"),
        _line("t1", 300, 130.0, 30400, 530, "@mosnet-daemon"),
        _line("t1", 302, 130.0, 21000, 10, "@mosnet-proxy"),  # a new PID
        _line("t1", 400, 130.0, 900, 3, "udhcpc -i mos -f -s /bin/true"),
    ])  # fmt: skip
    figs = fp.idle_figures(fp.parse_samples(console))
    d = figs["mosnet-daemon"]
    assert (d["cpu_s"], d["interval_s"], d["cpu_s_per_min"]) == (0.3, 30.0, 0.6)
    assert (d["rss_kb"], d["rss_growth_kb"], d["pid"]) == (30400, 400, 300)
    p = figs["mosnet-proxy"]
    assert p.get("restarted") is True and "cpu_s" not in p
    assert p["pid"] == 302
    assert figs["udhcpc"]["cpu_s"] == 0.0


def test_group_sums_add_the_members_or_leave_a_gap() -> None:
    figs: dict[str, dict[str, float | None]] = {
        "mosnet-daemon": {"rss_kb": 30000, "pss_kb": 15000, "threads": 3, "cpu_s_per_min": 0.2},
        "mosnet-proxy": {"rss_kb": 20000, "pss_kb": 8000, "threads": 2, "cpu_s_per_min": 0.1},
        "udhcpc": {"rss_kb": 900, "pss_kb": 100, "threads": 1, "cpu_s_per_min": 0.0},
    }
    s = fp.group_sums(figs, "mosnet")
    assert s == {"processes": 2, "rss_kb": 50000, "pss_kb": 23000, "threads": 5,
                 "cpu_s_per_min": pytest.approx(0.3)}  # fmt: skip
    figs["mosnet-proxy"]["cpu_s_per_min"] = None  # restarted: no CPU sum
    s2 = fp.group_sums(figs, "mosnet")
    assert s2 is not None and "cpu_s_per_min" not in s2
    assert fp.group_sums(figs, "ovs") is None


def test_tcg_factor() -> None:
    assert fp.tcg_factor(2000, 100) == 20.0
    assert fp.tcg_factor(0, 100) is None
    assert fp.tcg_factor(100, 0) is None


def test_threads_give_cpu_and_wakeups_per_minute() -> None:
    def t(tag: str, tid: int, vcs: int, ticks: int) -> str:
        return f"FPT {tag} 300 {tid} vcs={vcs} stat={_stat(tid, 'mosnet-daemon', ticks, 0)}"

    console = "\n".join([
        _line("t0", 300, 100.0, 30000, 500, "@mosnet-daemon"),
        t("t0", 300, 1000, 400), t("t0", 301, 50, 100), t("t0", 305, 7, 0),
        _line("t1", 300, 130.0, 30000, 530, "@mosnet-daemon"),
        t("t1", 300, 1030, 420), t("t1", 301, 170, 110),  # thread 305 ended
        'FPT t1 300 ${t##*/} vcs=$(sed ...',  # the echo of the typed command
    ])  # fmt: skip
    threads = fp.parse_threads(console)
    assert [(x.tag, x.tid) for x in threads] == [
        ("t0", 300),
        ("t0", 301),
        ("t0", 305),
        ("t1", 300),
        ("t1", 301),
    ]
    d = fp.idle_figures(fp.parse_samples(console), threads)["mosnet-daemon"]
    assert d["threads_detail"] == [
        {"tid": 300, "cpu_s_per_min": 0.4, "wakeups_per_min": 60.0},
        {"tid": 301, "cpu_s_per_min": 0.2, "wakeups_per_min": 240.0},
    ]
    assert d["wakeups_per_min"] == 300.0
    assert fp.thread_figures(threads, 999, 30.0) == []
