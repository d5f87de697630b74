"""Typed errors shared by every parser in mosnet and init, and how they show input."""

from __future__ import annotations

SHOWN_MAX = 160  # characters of a bad token quoted in a log line


def shown(text: str, limit: int = SHOWN_MAX) -> str:
    """``text`` safe for one log line: quoted, escaped, bounded.

    Command-line values are decoded with ``surrogateescape``, so a byte that
    was not UTF-8 is a lone surrogate here; it shows as ``\\xNN``, the byte
    the user typed. Control characters (escape sequences, newlines) would
    garble the console and split the line, so they show as ``\\xNN`` too.
    """
    out: list[str] = []
    for ch in text[:limit]:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\" or ch == "'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    more = f"…(+{len(text) - limit} chars)" if len(text) > limit else ""
    return f"'{''.join(out)}'{more}"


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
