"""Kernel command line → NetConfig: never a crash, whatever the text (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.config import cmdline
from mosnet.config.model import NetConfig

# --- properties: parse never raises ----------------------------------------------------

KEYS = sorted(cmdline.HANDLERS) + ["mosfoo", "root", "quiet"]
ATOMS = [
    "",
    ",",
    ":",
    "/",
    "-",
    "[",
    "]",
    "=",
    '"',
    "tcp:",
    "udp:",
    "sctp:",
    "dhcp",
    "none",
    "snat",
    "eth0",
    "01-",
    "10.0.0.1",
    "255.255.255.0",
    "255.0.255.0",
    "fe80::1",
    "[2001:db8::1]",
    "2001:db8::1/64",
    "22",
    "0",
    "65536",
    "8000-8100",
    "9-3",
    "aa:bb:cc:dd:ee:ff",
    "52",
    "nan",
    "1e9",
    "²",
    "\x00",
    "é",
    "..",
    "/24",
    "%eth0",
    "1_0",
    " ",
]
values = st.lists(st.one_of(st.sampled_from(ATOMS), st.text(max_size=6)), max_size=12).map("".join)
params = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), values)), max_size=8)


def _check(result: cmdline.ParseResult) -> None:
    assert isinstance(result.config, NetConfig)
    for err in result.errors:
        assert "internal error" not in err.expected, str(err)
        assert err.param and err.expected
    cmdline.format_errors(result.errors)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    _check(cmdline.parse(text))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params)
def test_structured_junk_never_raises(items: list[tuple[str, str | None]]) -> None:
    text = " ".join(k if v is None else f"{k}={v}" for k, v in items)
    _check(cmdline.parse(text))
