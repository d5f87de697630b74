"""Split a kernel command line into parameters exactly the way the kernel does.

The command line is bytes: /proc/cmdline holds whatever the boot loader
gave the kernel, any byte from 0x01 to 0xff. So the split works on bytes,
as the kernel's ``next_arg()`` (lib/cmdline.c, lib/params.c) does:

* arguments are separated by the kernel's ``isspace()`` bytes: space,
  ``\\t \\n \\v \\f \\r`` and 0xa0 (Latin-1 no-break space in lib/ctype.c);
* a ``"`` toggles quoting anywhere in an argument, and quoted spaces do not
  separate; one pair of quotes is stripped around a whole argument
  (``"a b"``) or around a value (``key="a b"``), quotes elsewhere stay;
* a bare ``--`` ends the parameters: what follows goes to init as argv.

Keys and values are decoded as UTF-8 with ``surrogateescape``: nothing is
lost, a byte that is not UTF-8 becomes a lone surrogate, and
:func:`undecodable` tells a parser to refuse such a value.

One deliberate difference: a quote that is never closed swallows the rest
of the line in the kernel, which would cost every parameter after a stray
``"``. Here it is an ordinary character of its argument, and ``warnings``
says so. No other byte changes how another parameter is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# lib/ctype.c marks 9-13, 32 and 160 as _S: the kernel splits on all of them.
KERNEL_SPACE = frozenset(b" \t\n\v\f\r\xa0")
QUOTE = 0x22
EQUALS = 0x3D
_SPACES = re.compile(rb"[ \t\n\v\f\r\xa0]*")
_SPACE_OR_QUOTE = re.compile(rb'[ \t\n\v\f\r\xa0"]')
_SPACE = re.compile(rb"[ \t\n\v\f\r\xa0]")
_NOT_SPACES = re.compile(rb"[^ \t\n\v\f\r\xa0]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Param:
    key: str
    value: str | None  # None for a bare flag such as ``ro``


@dataclass(frozen=True)
class CmdLine:
    """A whole line: the parameters before ``--`` and init's arguments after it."""

    params: tuple[Param, ...] = ()
    init_args: tuple[str, ...] | None = None  # None: the line has no ``--``
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class KernelLine:
    """The kernel's line as read and as split: split once, handed to every reader."""

    raw: bytes
    line: CmdLine

    @property
    def text(self) -> str:
        return decode(self.raw)


def kernel_line(raw: bytes) -> KernelLine:
    return KernelLine(raw, parse_line(raw))


def to_bytes(text: str | bytes) -> bytes:
    """The bytes of a line; a str made with surrogateescape gets its bytes back."""
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte produced
        return text.encode("utf-8", "surrogatepass")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def undecodable(text: str) -> bool:
    """Did ``text`` hold bytes that are not UTF-8 (or any lone surrogate)?"""
    return _SURROGATE.search(text) is not None


def has_space(text: str) -> bool:
    """Would the kernel split ``text`` (rendered back into a line) somewhere?"""
    return _SPACE.search(to_bytes(text)) is not None


def _skip_spaces(b: bytes, i: int) -> int:
    m = _SPACES.match(b, i)
    return m.end() if m else i


def _scan(b: bytes, i: int, in_quote: bool, quotes: bool = True) -> tuple[int, int, bool]:
    """From ``i`` to the end of one argument: (end, first '=' or -1, still in a quote)."""
    start = i
    stop = _SPACE_OR_QUOTE if quotes else _SPACE
    while True:
        if in_quote:  # spaces do not count until the closing quote
            close = b.find(b'"', i)
            if close < 0:
                i = len(b)
                break
            i, in_quote = close + 1, False
            continue
        m = stop.search(b, i)
        if m is None:
            i = len(b)
            break
        i = m.start()
        if b[i] != QUOTE:
            break
        i, in_quote = i + 1, True
    # The kernel's ``equals == 0`` means "none yet": a leading '=' belongs to the key.
    equals = b.find(b"=", start + 1, i)
    return i, equals, in_quote


def next_arg(b: bytes, i: int) -> tuple[bytes, bytes | None, int, bool]:
    """One argument starting at ``i`` (not a space): key, value, next index, unclosed quote.

    A quote that is never closed would swallow every parameter after it. The
    kernel lets it; here it is an ordinary character instead, so one stray
    ``"`` costs only the argument it is in.
    """
    quoted = b[i] == QUOTE
    start = i + 1 if quoted else i
    end, equals, open_quote = _scan(b, start, quoted)
    if open_quote:  # quotes as ordinary characters, up to the next space
        end, equals, _ = _scan(b, i, False, quotes=False)
        return (*_key_value(b, i, equals, equals + 1, end), end, True)
    # The kernel cuts a closing quote of a quoted argument or of a quoted value.
    value_quoted = equals >= 0 and equals + 1 < len(b) and b[equals + 1] == QUOTE
    cut = end > start and b[end - 1] == QUOTE and (quoted or value_quoted)
    value_start = equals + 2 if value_quoted else equals + 1
    return (*_key_value(b, start, equals, value_start, end - 1 if cut else end), end, False)


def _key_value(
    b: bytes, start: int, equals: int, value_start: int, last: int
) -> tuple[bytes, bytes | None]:
    if equals < 0:
        return b[start:last], None
    return b[start:equals], b[value_start:last]


def _word(key: bytes, value: bytes | None) -> str:
    """An init argument as the kernel rebuilds it (repair_env_string)."""
    return decode(key if value is None else key + b"=" + value)


Arg = tuple[int, bytes, bytes | None, bool]  # where it starts, key, value, unclosed quote


def _arguments(b: bytes) -> list[Arg]:
    """Every argument of the line, as next_arg() cuts them."""
    if b'"' not in b:  # no quoting anywhere (most lines): split on the spaces
        out: list[Arg] = []
        for m in _NOT_SPACES.finditer(b):
            word = m.group()
            equals = word.find(b"=", 1)  # a leading '=' belongs to the key
            value = None if equals < 0 else word[equals + 1 :]
            out.append((m.start(), word if equals < 0 else word[:equals], value, False))
        return out
    args = []
    i = _skip_spaces(b, 0)
    while i < len(b):
        start = i
        key, value, i, open_quote = next_arg(b, i)
        args.append((start, key, value, open_quote))
        i = _skip_spaces(b, i)
    return args


def parse_line(text: str | bytes) -> CmdLine:
    """Split a whole line; never raises. A NUL ends it, as it ends the kernel's C string."""
    params: list[Param] = []
    args: list[str] | None = None
    warnings: list[str] = []
    for start, key, value, open_quote in _arguments(to_bytes(text).split(b"\0", 1)[0]):
        if open_quote:
            warnings.append(
                f"unclosed quote in the parameter at byte {start}: read as an ordinary "
                "character, so the parameters after it still apply (the kernel itself "
                "reads the rest of the line as one parameter)"
            )
        if args is not None:
            args.append(_word(key, value))
        elif value is None and key == b"--":
            args = []
        else:
            params.append(Param(decode(key), None if value is None else decode(value)))
    return CmdLine(tuple(params), None if args is None else tuple(args), tuple(warnings))


def split(text: str | bytes) -> tuple[Param, ...]:
    """The parameters before ``--`` in order; later duplicates stay."""
    return parse_line(text).params


def has_separator(text: str | bytes) -> bool:
    """Does the line have a lone ``--`` (even with nothing after it)?"""
    return parse_line(text).init_args is not None


def init_args(text: str | bytes) -> tuple[str, ...]:
    """Arguments after ``--``: the kernel hands them to init."""
    return parse_line(text).init_args or ()


def last(params: tuple[Param, ...], key: str) -> Param | None:
    """The last occurrence wins, as in the kernel and dracut."""
    found = None
    for p in params:
        if p.key == key:
            found = p
    return found
