"""The mosroot= HTTP client against malformed, hostile and odd but valid replies, and fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from init.httpparse import HttpError
from tests.unit.helpers.netroot_http import FakeServer, fetch, ok


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 9000 + b"\r\n\r\n", "longer than"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"\r\n", "header lines"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", "CRLF"),
        (b"HTTP/1.1 302 Found\r\n\r\n", "without a Location"),
        (b"HTTP/1.1 200 OK\r\n", "closed early"),
    ],
)
def test_malformed_responses_are_errors(reply: bytes, match: str) -> None:
    with pytest.raises(HttpError, match=match):
        fetch(FakeServer(reply))


OK_HEAD = b"HTTP/1.1 200 OK\r\n"
CHUNKED = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        # Content-Length: only ASCII digits, one value ('²' passes str.isdigit())
        (OK_HEAD + b"Content-Length: \xb2\r\n\r\n", r"Content-Length: bad value '\\xb2'"),
        (OK_HEAD + "Content-Length: ²\r\n\r\n".encode(), r"bad value '\\xc2\\xb2'"),
        (OK_HEAD + "Content-Length: ٣\r\n\r\n".encode(), "Content-Length: bad value"),
        (OK_HEAD + b"Content-Length: +5\r\n\r\n", "Content-Length: bad value"),
        (OK_HEAD + b"Content-Length: 5 5\r\n\r\n", "Content-Length: bad value"),
        (OK_HEAD + b"Content-Length: 0x10\r\n\r\n", "Content-Length: bad value"),
        (OK_HEAD + b"Content-Length:\r\n\r\n", "Content-Length: bad value"),
        (OK_HEAD + b"Content-Length: 5, 6\r\n\r\n", "Content-Length: conflicting"),
        (OK_HEAD + b"Content-Length: 17592186044417\r\n\r\n", "more than 17592186044416"),
        (OK_HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n", "expected chunked"),
        (OK_HEAD + b"Transfer-Encoding: chunked, chunked\r\n\r\n", "expected chunked"),
        (CHUNKED + b"fffffffffffff\r\n", "chunk size line"),
        (CHUNKED + b"-1\r\n", "chunk size line"),
        (CHUNKED + b"0x5\r\n", "chunk size line"),
        (CHUNKED + b"\xb2\r\n", r"chunk size line '\\xb2'"),
        (CHUNKED + b"1\r\na\r\n0\r\nbad trailer\r\n\r\n", "trailers: malformed"),
        (b"HTTP/1.1 \xef\xbc\x92\xef\xbc\x90\xef\xbc\x90 OK\r\n\r\n", "bad status code"),
        (b"HTTP/2 200 OK\r\n\r\n", "not HTTP/1.x"),
        (b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n", "continuation line"),
        (OK_HEAD + b"Bad Name: v\r\n\r\n", "malformed header line"),
        (OK_HEAD + b"\x00: v\r\n\r\n", r"malformed header line '\\x00: v'"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 6 + b"HTTP/1.1 200 OK\r\n\r\n", "interim"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", "HTTP status 101"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "HTTP status 204 'No Content', expected 200"),
        # Location: a port is checked on the value that is stored
        (b"HTTP/1.1 302 F\r\nLocation: http://h:0000065536/x\r\n\r\n", "port 1..65535"),
        (b"HTTP/1.1 302 F\r\nLocation: http://h:0/x\r\n\r\n", "port 1..65535"),
        (b"HTTP/1.1 302 F\r\nLocation: http://h:\xb2/x\r\n\r\n", r"'http://h:\\xb2/x'"),
        (b"HTTP/1.1 302 F\r\nLocation: http://h:\xd9\xa3/x\r\n\r\n", "printable ASCII"),
        (b"HTTP/1.1 302 F\r\nLocation: http://[fe80::1%\xff]/x\r\n\r\n", "Location"),
        (b"HTTP/1.1 302 F\r\nLocation: http://u:p@h/x\r\n\r\n", "no user@"),
        (b"HTTP/1.1 302 F\r\nLocation: #top\r\n\r\n", "names the same URL"),
        (b"HTTP/1.1 302 F\r\nLocation: /a\r\nLocation: /b\r\n\r\n", "conflicting Location"),
    ],
)
def test_hostile_replies_are_declared_errors(reply: bytes, match: str) -> None:
    with pytest.raises(HttpError, match=match) as err:
        fetch(FakeServer(reply))
    assert not err.value.transient and str(err.value).isprintable()


@pytest.mark.parametrize(
    "reply",
    [
        OK_HEAD + b"Content-Length: 0005\r\n\r\nhello",
        OK_HEAD + b"Content-Length: 5, 05\r\nContent-Length: 5\r\n\r\nhello",
        OK_HEAD + b"X-Long: a\r\n \t b\r\nContent-Length:\t5 \r\n\r\nhello",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Hints\r\nLink: </x>\r\n\r\n"
        + OK_HEAD
        + b"Content-Length: 5\r\n\r\nhello",
        b"HTTP/1.9 200 \x80\xff junk \x00\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200\nContent-Length: 5\n\nhello",
        CHUNKED.replace(b"chunked", b"Chunked")
        + b"002 ;a=b\r\nhe\r\n3\r\nllo\r\n000\r\nT: 1\r\n\r\n",
        OK_HEAD
        + b"Transfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_unusual_but_valid_replies_give_the_body(reply: bytes) -> None:
    assert fetch(FakeServer(reply)) == b"hello"


def _mutations() -> st.SearchStrategy[bytes]:
    valid = ok(b"payload") + b""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    base = st.sampled_from([valid, chunked])

    def mutate(data: bytes, pos: int, junk: bytes, cut: bool) -> bytes:
        pos %= len(data)
        return data[:pos] if cut else data[:pos] + junk + data[pos + len(junk) :]

    return st.one_of(
        st.binary(max_size=300),
        st.builds(
            mutate, base, st.integers(0, 200), st.binary(min_size=1, max_size=8), st.booleans()
        ),
    )


@settings(max_examples=150, deadline=None)
@given(_mutations())
def test_fuzz_any_reply_gives_bytes_or_httperror(reply: bytes) -> None:
    try:
        data = fetch(FakeServer(reply), stall=0.5)
    except HttpError:
        return
    assert isinstance(data, bytes)
