"""Typed errors shared by every parser in mosnet and init, and how they show input."""

from __future__ import annotations

SHOWN_MAX = 160  # characters of a bad token quoted in a log line


def _escape(ch: str, quote: bool) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if quote and ch in "\\'":
        return "\\" + ch
    if ch.isprintable():
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# str.translate does the common escapes in C: control characters and the
# surrogates that stand for bytes that were not UTF-8
_TABLE = {
    c: _escape(chr(c), False) for c in (*range(0x20), *range(0x7F, 0xA0), *range(0xDC80, 0xDD00))
}
_QUOTED_TABLE = {**_TABLE, ord("\\"): "\\\\", ord("'"): "\\'"}


def _body(text: str, quote: bool) -> str:
    if text.isprintable() and not (quote and ("\\" in text or "'" in text)):
        return text  # the common case: nothing to escape
    out = text.translate(_QUOTED_TABLE if quote else _TABLE)
    if out.isprintable():
        return out
    return "".join(_escape(ch, quote) for ch in text)  # rarer non-printables


def _cut(text: str, limit: int) -> str:
    return f"…(+{len(text) - limit} chars)" if len(text) > limit else ""


def escaped(text: str, limit: int = 1000) -> str:
    """``text`` safe inside one log line: escaped and bounded, not quoted.

    Command-line values are decoded with ``surrogateescape``, so a byte that
    was not UTF-8 is a lone surrogate here; it shows as ``\\xNN``, the byte
    the user typed. Control characters (escape sequences, newlines) would
    garble the console and split the line, so they show as ``\\xNN`` too.
    """
    return _body(text[:limit], False) + _cut(text, limit)


def shown(text: str, limit: int = SHOWN_MAX) -> str:
    """A bad token quoted for one log line: ``'...'``, escaped, bounded."""
    return f"'{_body(text[:limit], True)}'{_cut(text, limit)}"


class MosnetError(Exception):
    """Base class of every error mosnet raises on purpose."""


class ParamError(MosnetError, ValueError):
    """A kernel or CLI parameter had a value we cannot use.

    It names the parameter, the offending token and the form we expected, so
    one log line is enough for a user to fix their command line.
    """

    def __init__(self, param: str, token: str, expected: str) -> None:
        self.param = param
        self.token = token
        self.expected = expected
        super().__init__(f"{shown(param, 40)[1:-1]}: bad value {shown(token)}, expected {expected}")


class StartFailed(MosnetError):
    """A supervised process could not be started; the supervisor tries again later."""
