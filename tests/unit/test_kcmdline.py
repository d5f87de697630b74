"""The command-line splitter against a line-by-line transcription of the kernel's.

``kernel_next_arg`` below follows lib/cmdline.c ``next_arg()`` and the loop
of lib/params.c ``parse_args()`` statement by statement, on a bytearray
standing in for the C string. mosnet's splitter must agree with it on every
line whose quotes are closed; where a quote is never closed mosnet reads it
as an ordinary character (the kernel swallows the rest of the line) and
says so.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.config import kcmdline
from mosnet.config.kcmdline import Param

FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
KERNEL_SPACE = b" \t\n\v\f\r\xa0"


def _isspace(c: int) -> bool:
    return c in KERNEL_SPACE


def kernel_next_arg(s: bytearray, args: int) -> tuple[bytes, bytes | None, int, bool]:
    """next_arg(): (param, val, where the next argument starts, in_quote at the end)."""
    equals, in_quote, quoted = 0, False, False
    if s[args] == ord('"'):
        args += 1
        in_quote = quoted = True
    i = 0
    while args + i < len(s) and s[args + i]:
        if _isspace(s[args + i]) and not in_quote:
            break
        if equals == 0 and s[args + i] == ord("="):
            equals = i
        if s[args + i] == ord('"'):
            in_quote = not in_quote
        i += 1
    param, val = args, None
    if equals:
        s[args + equals] = 0
        val = args + equals + 1
        if s[val] == ord('"'):
            val += 1
            if s[args + i - 1] == ord('"'):
                s[args + i - 1] = 0
    if quoted and i > 0 and s[args + i - 1] == ord('"'):
        s[args + i - 1] = 0
    end = args + i
    if end < len(s) and s[end]:
        s[end] = 0
        end += 1
    while end < len(s) and s[end] and _isspace(s[end]):  # skip_spaces
        end += 1
    return _cstr(s, param), None if val is None else _cstr(s, val), end, in_quote


def _cstr(s: bytearray, at: int) -> bytes:
    stop = s.find(0, at)
    return bytes(s[at : stop if stop >= 0 else len(s)])


def kernel_parse(
    line: bytes,
) -> tuple[list[tuple[bytes, bytes | None]], list[bytes] | None, bool]:
    """parse_args() up to ``--``, then init's arguments as set_init_arg() rebuilds
    them (``key=value``, the value's quotes gone); and whether a quote stayed open."""
    s = bytearray(line) + b"\0"
    at = 0
    while s[at] and _isspace(s[at]):
        at += 1
    params: list[tuple[bytes, bytes | None]] = []
    args: list[bytes] | None = None
    unclosed = False
    while s[at]:
        param, val, at, open_quote = kernel_next_arg(s, at)
        unclosed |= open_quote
        if args is not None:
            args.append(param if val is None else param + b"=" + val)
        elif val is None and param == b"--":
            args = []
        else:
            params.append((param, val))
    return params, args, unclosed


# Note: an '=' at the very start of an argument is not an '=' to the kernel
# (``equals`` stays 0); mosnet's splitter agrees, see the test below.
_BYTES = st.lists(st.sampled_from(list(b' \t\xa0"=ab-\xff\xc3\x01')), max_size=40).map(bytes)


@FUZZ
@given(_BYTES)
def test_split_agrees_with_the_kernel_when_quotes_close(line: bytes) -> None:
    want, args, unclosed = kernel_parse(line)
    got = kcmdline.parse_line(line)
    if unclosed:
        assert got.warnings  # mosnet's one deliberate difference, and it says so
        return
    assert not got.warnings
    assert [(kcmdline.to_bytes(p.key), _b(p.value)) for p in got.params] == want
    got_args = None if got.init_args is None else [kcmdline.to_bytes(a) for a in got.init_args]
    assert got_args == args


def _b(value: str | None) -> bytes | None:
    return None if value is None else kcmdline.to_bytes(value)


def test_an_equals_sign_first_is_part_of_the_key_as_in_the_kernel() -> None:
    assert kernel_parse(b"=v")[0] == [(b"=v", None)]
    assert kcmdline.split(b"=v") == (Param("=v", None),)


def test_every_byte_is_kept_and_0xa0_separates() -> None:
    line = bytes(range(1, 256)).replace(b'"', b"")
    params = kcmdline.split(line)
    joined = b"".join(kcmdline.to_bytes(p.key if p.value is None else f"{p.key}={p.value}")
                      for p in params)  # fmt: skip
    assert joined == bytes(b for b in line if b not in KERNEL_SPACE)
    assert kcmdline.split(b"a\xa0b") == (Param("a", None), Param("b", None))
    assert kcmdline.split("à b".encode()) == (Param("\udcc3", None), Param("b", None))


def test_a_stray_quote_costs_only_its_own_argument() -> None:
    line = kcmdline.parse_line(b'console=ttyS0 foo="bar mosip4=10.0.0.5,10.0.0.1,24 ro')
    assert [p.key for p in line.params] == ["console", "foo", "mosip4", "ro"]
    assert line.params[1].value == '"bar' and "unclosed quote" in line.warnings[0]
    # a closed quote still groups, as in the kernel
    line = kcmdline.parse_line(b'dyndbg="file x.c +p" mosip4=1')
    assert [(p.key, p.value) for p in line.params] == [("dyndbg", "file x.c +p"), ("mosip4", "1")]


def test_a_nul_ends_the_line_like_the_c_string() -> None:
    assert kcmdline.split(b"ro\0rw") == (Param("ro", None),)
