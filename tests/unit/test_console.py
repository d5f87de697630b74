"""The console level as the kernel reads it: does it echo our info lines itself?"""

from __future__ import annotations

import pytest

from mosnet.config import console
from mosnet.config.kcmdline import parse_line


@pytest.mark.parametrize(
    ("cmdline", "echoes"),
    [
        ("root=/dev/vda", True),
        ("root=/dev/vda quiet", False),
        ("loglevel=4", False),
        ("loglevel=7", True),
        ("loglevel=x", True),
    ],
)
def test_kernel_echoes_info_follows_quiet_and_loglevel(cmdline: str, echoes: bool) -> None:
    assert console.kernel_echoes_info(parse_line(cmdline)) is echoes


@pytest.mark.parametrize(
    ("cmdline", "level"),
    [
        ("", console.CONSOLE_DEFAULT),
        ("quiet", console.CONSOLE_QUIET),
        ("quiet debug", console.CONSOLE_DEBUG),
        ("debug loglevel=3", 3),
        ("quiet=1 debug=yes", console.CONSOLE_DEFAULT),  # not the kernel's flags: ignored
        ("ignore_loglevel quiet", console.CONSOLE_QUIET),
        ("quiet ignore_loglevel=1", console.CONSOLE_ALL),
    ],
)
def test_the_last_level_parameter_wins(cmdline: str, level: int) -> None:
    assert console.console_loglevel(parse_line(cmdline)) == (level, ())


@pytest.mark.parametrize("value", ["", "x", "٣", "99999999999"])
def test_a_malformed_loglevel_is_reported_and_ignored(value: str) -> None:
    text = "loglevel" if value == "" else f"loglevel={value}"
    level, errors = console.console_loglevel(parse_line(f"quiet {text}"))
    assert level == console.CONSOLE_QUIET
    assert [(e.param, e.token) for e in errors] == [("loglevel", value)]
