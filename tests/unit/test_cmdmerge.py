"""The baked command line under the kernel's: merge rules, file format, logging."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from init import bootcfg
from mosnet.config import cmdline, cmdmerge, kcmdline
from mosnet.config.cmdmerge import merge, render
from mosnet.config.kcmdline import Param
from mosnet.config.registry import group

BAKED = (
    "mosip4=136.243.10.20,136.243.10.1,255.255.255.255 mosfirewall=ssh "
    "nameserver=185.12.64.1 nameserver=185.12.64.2 ro"
)


def _params(text: str) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for p in kcmdline.split(text):
        out.setdefault(p.key, []).append(p.value)
    return out


def test_without_a_baked_line_the_kernel_line_is_untouched() -> None:
    kernel = 'BOOT_IMAGE=/vmlinuz  root=/dev/sda1 "x=a b"\n'
    for baked in (None, "", "   "):
        m = merge(baked, kernel)
        assert m.text == kernel and m.overridden == () and m.cleared == ()


def test_baked_parameters_apply_when_the_kernel_line_lacks_them() -> None:
    m = merge(BAKED, "BOOT_IMAGE=/vmlinuz console=ttyS0 root=/dev/vda")
    got = _params(m.text)
    assert got["mosip4"] == ["136.243.10.20,136.243.10.1,255.255.255.255"]
    assert got["mosfirewall"] == ["ssh"] and got["ro"] == [None]
    assert got["console"] == ["ttyS0"] and got["root"] == ["/dev/vda"]
    assert m.overridden == ()
    net = cmdline.parse(m.text).config
    assert net.mode == "static" and net.firewall is not None


def test_a_kernel_key_overrides_the_baked_one_and_is_reported() -> None:
    m = merge(BAKED, "mosfirewall=permissive,tcp:8080")
    # the baked value stays ahead of the kernel's: the last valid one wins
    assert _params(m.text)["mosfirewall"] == ["ssh", "permissive,tcp:8080"]
    assert m.overridden == ("mosfirewall=ssh",)
    firewall = cmdline.parse(m.line).config.firewall
    assert firewall is not None and firewall.preset == "permissive"
    assert "mosip4" in _params(m.text)


def test_a_malformed_kernel_value_leaves_the_baked_default() -> None:
    m = merge(BAKED, "mosip4=136.243.10.20,136.243.10.1,255.255.255.256 ro=x mosfirewall=\udcff")
    parsed = cmdline.parse(m.line)
    assert [e.param for e in parsed.errors] == ["mosip4", "mosfirewall"]
    assert parsed.config.ip4 is not None and str(parsed.config.ip4.address) == "136.243.10.20"
    assert parsed.config.firewall is not None and parsed.config.firewall.preset == "ssh"
    boot, errors = bootcfg.parse(m.line)
    assert boot.readonly and [e.param for e in errors] == ["ro"]


def test_repeatable_keys_are_replaced_as_a_set() -> None:
    m = merge(BAKED, "nameserver=10.0.0.53")
    assert _params(m.text)["nameserver"] == ["10.0.0.53"]
    assert m.overridden == ("nameserver=185.12.64.1", "nameserver=185.12.64.2")
    assert [str(a) for a in cmdline.parse(m.text).config.nameservers] == ["10.0.0.53"]


def test_rw_on_the_kernel_line_beats_a_baked_ro() -> None:
    m = merge(BAKED, "rw")
    assert m.overridden == ("ro",)
    assert bootcfg.parse(m.line)[0].readonly is False
    assert group("ro") == group("rw") != group("root")


def test_an_empty_value_clears_a_baked_key_without_an_error() -> None:
    m = merge(BAKED, "mosip4= root=/dev/vda")
    assert "mosip4" not in _params(m.text)
    assert m.cleared == ("mosip4=136.243.10.20,136.243.10.1,255.255.255.255",)
    assert m.overridden == ()
    parsed = cmdline.parse(m.text)
    assert parsed.config.mode == "dhcp" and parsed.errors == ()


def test_an_empty_value_without_a_baked_key_stays_an_error() -> None:
    m = merge(BAKED, "mosip6=")
    assert _params(m.text)["mosip6"] == [""]
    assert [e.param for e in cmdline.parse(m.text).errors] == ["mosip6"]


def test_init_arguments_come_as_one_list() -> None:
    baked = "mosfirewall=ssh -- single quiet"
    assert kcmdline.init_args(merge(baked, "root=/dev/vda").text) == ("single", "quiet")
    assert merge(baked, "root=/dev/vda").init_args_from == "baked"
    over = merge(baked, "root=/dev/vda -- emergency")
    assert kcmdline.init_args(over.text) == ("emergency",) and over.init_args_from == "kernel"
    # a bare -- on the kernel line means "no arguments", and wins
    bare = merge(baked, "root=/dev/vda --")
    assert kcmdline.init_args(bare.text) == () and kcmdline.has_separator(bare.text)
    assert merge("mosfirewall=ssh", "root=/dev/vda").init_args_from is None


def test_values_with_spaces_survive_quoting() -> None:
    m = merge("mosfirewall=ssh", 'root=/dev/vda "x=a b" y="c d" -- "e f"')
    assert ("x", "a b") in [(p.key, p.value) for p in kcmdline.split(m.text)]
    assert ("y", "c d") in [(p.key, p.value) for p in kcmdline.split(m.text)]
    assert kcmdline.init_args(m.text) == ("e f",)


# --- properties ----------------------------------------------------------------

KEYS = ["mosip4", "mosfirewall", "nameserver", "ip", "ro", "rw", "root", "console", "mosshell"]
_value = st.one_of(
    st.none(),
    st.just(""),
    st.text(st.sampled_from("abc019.,:/- \t"), min_size=1, max_size=8),
)
_param = st.builds(Param, st.sampled_from(KEYS), _value)
_line = st.lists(_param, max_size=8)
_args = st.one_of(st.none(), st.lists(st.text(st.sampled_from("ab -"), max_size=4), max_size=3))


def _clean(params: list[Param]) -> list[Param]:
    """What render() can carry: no empty tokens, no lone '--'."""
    out = []
    for p in params:
        word = p.key if p.value is None else f"{p.key}={p.value}"
        if word.strip() and word != "--":
            out.append(p)
    return out


def _clean_args(args: list[str] | None) -> list[str] | None:
    return None if args is None else [a for a in args if a.strip() and a.strip() != "--"]


@given(_line, _args)
def test_render_round_trips_through_the_tokenizer(
    params: list[Param], args: list[str] | None
) -> None:
    params, args = _clean(params), _clean_args(args)
    text = render(params, args)
    assert list(kcmdline.split(text)) == params
    assert kcmdline.has_separator(text) == (args is not None)
    if args is not None:
        assert list(kcmdline.init_args(text)) == args


@given(_line, _line, _args, _args)
def test_kernel_line_keys_always_win(
    baked_p: list[Param], kernel_p: list[Param], bargs: list[str] | None, kargs: list[str] | None
) -> None:
    baked_p, kernel_p = _clean(baked_p), _clean(kernel_p)
    bargs, kargs = _clean_args(bargs), _clean_args(kargs)
    m = merge(render(baked_p, bargs), render(kernel_p, kargs))
    eff = list(kcmdline.split(m.text))
    baked_groups = {group(p.key) for p in baked_p}
    clears = [p for p in kernel_p if p.value == "" and group(p.key) in baked_groups]
    given_p = [p for p in kernel_p if p not in clears]
    # every kernel parameter is there, in order, after what is left of the baked line
    assert eff[len(eff) - len(given_p) :] == given_p
    # a baked parameter stays ahead of them unless an empty key= cleared it or the
    # kernel line has a set of the same repeatable key
    cleared = {group(p.key) for p in clears} - {group(p.key) for p in given_p}
    sets = {p.key for p in given_p if p.key in cmdmerge.REPEATABLE}
    survivors = [p for p in baked_p if group(p.key) not in cleared | sets]
    assert eff[: len(eff) - len(given_p)] == survivors
    # so the last value of any kernel key is the kernel's
    for p in given_p:
        assert kcmdline.last(tuple(eff), p.key) == kcmdline.last(tuple(given_p), p.key)
    want_args = kargs if kargs is not None else bargs
    assert kcmdline.has_separator(m.text) == (want_args is not None)
    assert list(kcmdline.init_args(m.text)) == (want_args or [])


# --- the file and the log --------------------------------------------------------


def test_file_format_skips_comments_and_joins_lines(tmp_path: Path) -> None:
    path = tmp_path / "cmdline"
    path.write_bytes(
        b"# header\n  mosip4=1.2.3.4,1.2.3.1,255.255.255.0\n\n  # x\nmosfirewall=ssh\n"
    )
    log = logging.getLogger("test.cmdmerge")
    assert cmdmerge.read_baked(log, str(path)) == (
        "mosip4=1.2.3.4,1.2.3.1,255.255.255.0 mosfirewall=ssh"
    )
    assert cmdmerge.read_baked(log, str(tmp_path / "missing")) is None


def test_an_oversized_file_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cmdline"
    path.write_bytes(b"x" * 5000)
    with caplog.at_level(logging.ERROR):
        assert cmdmerge.read_baked(logging.getLogger("t"), str(path)) is None
    assert "over 4096 bytes" in caplog.text and "kernel line only" in caplog.text


def test_a_byte_that_is_not_utf8_costs_only_its_parameter(tmp_path: Path) -> None:
    path = tmp_path / "cmdline"
    path.write_bytes(b"mosfirewall=ssh mosbridge=ov\xff\x85s\nmosdhcp_timeout=5\n")
    baked = cmdmerge.read_baked(logging.getLogger("t"), str(path))
    assert baked == "mosfirewall=ssh mosbridge=ov\udcff\udc85s mosdhcp_timeout=5"
    result = cmdline.parse(merge(baked, "console=ttyS0").line)
    assert [e.param for e in result.errors] == ["mosbridge"]
    assert result.config.firewall is not None and result.config.dhcp.timeout == 5.0


def test_log_and_state_name_what_was_overridden(caplog: pytest.LogCaptureFixture) -> None:
    m = merge(BAKED + " -- single", "mosfirewall=none mosip4= -- x")
    with caplog.at_level(logging.INFO):
        cmdmerge.log_merge(m, logging.getLogger("t"))
    assert f"baked command line: {BAKED} -- single" in caplog.text
    assert "baked mosfirewall=ssh overridden by the kernel line" in caplog.text
    assert "cleared by an empty mosip4= on the kernel line" in caplog.text
    assert "baked init arguments replaced" in caplog.text
    assert "effective command line: " in caplog.text
    section = cmdmerge.state_section(m)
    assert section["overridden"] == ["mosfirewall=ssh"]
    assert section["cleared"][0].startswith("mosip4=")
    assert section["effective"].endswith("mosfirewall=none -- x")
    assert section["kernel"] == "mosfirewall=none mosip4= -- x" and section["baked"]


def test_no_baked_file_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        cmdmerge.log_merge(merge(None, "root=/dev/vda"), logging.getLogger("t"))
    assert caplog.text == ""
