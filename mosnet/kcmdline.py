"""Split a kernel command line into (key, value) pairs the way the kernel does.

The kernel (lib/cmdline.c, next_arg) splits on whitespace, lets double quotes
protect spaces, and strips one pair of quotes around a value. Everything after
a lone ``--`` belongs to init, not to us.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    key: str
    value: str | None  # None for a bare flag such as ``ro``


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    current: list[str] = []
    in_quote = False
    for ch in text:
        if ch == '"':
            in_quote = not in_quote
            continue
        if ch.isspace() and not in_quote:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        tokens.append("".join(current))
    return tokens


def split(text: str) -> tuple[Param, ...]:
    """Return the parameters before ``--`` in order; later duplicates stay."""
    params: list[Param] = []
    for token in _tokens(text):
        if token == "--":
            break
        key, sep, value = token.partition("=")
        params.append(Param(key, value if sep else None))
    return tuple(params)


def has_separator(text: str) -> bool:
    """Does the line have a lone ``--`` (even with nothing after it)?"""
    return "--" in _tokens(text)


def init_args(text: str) -> tuple[str, ...]:
    """Arguments after ``--``: the kernel hands them to init."""
    tokens = _tokens(text)
    if "--" not in tokens:
        return ()
    return tuple(tokens[tokens.index("--") + 1 :])


def last(params: tuple[Param, ...], key: str) -> Param | None:
    """The last occurrence wins, as in the kernel and dracut."""
    found = None
    for p in params:
        if p.key == key:
            found = p
    return found
