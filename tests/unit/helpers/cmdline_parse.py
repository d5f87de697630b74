"""``ok(text)``, a kernel command line parsed without errors, and ``P``, PortRange for short."""

from __future__ import annotations

from mosnet.config import cmdline
from mosnet.config.model import PortRange

P = PortRange


def ok(text: str) -> cmdline.ParseResult:
    result = cmdline.parse(text)
    assert result.errors == (), cmdline.format_errors(result.errors)
    return result
