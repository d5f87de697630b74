"""The plain-socket HTTP client behind mosroot=: framing, redirects, errors, fuzz."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fuzz import httpget as fuzz_httpget
from bench.fuzz.httpget import World
from init import httpget
from init.httpparse import HttpError
from init.netrootcfg import Url, parse_url
from mosnet.base.errors import ParamError

URL = parse_url("http://10.0.0.1:8080/img/root.squashfs")


class FakeServer:
    """``connect`` for httpget: each call serves the next canned reply on a socketpair."""

    def __init__(self, *replies: bytes | Callable[[socket.socket], None]) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.addrs: list[tuple[str, int]] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, addr: tuple[str, int], timeout: float) -> socket.socket:
        if not self.replies:
            raise ConnectionRefusedError(111, "Connection refused")
        self.addrs.append(addr)
        ours, theirs = socket.socketpair()
        reply = self.replies.pop(0)
        t = threading.Thread(target=self._serve, args=(theirs, reply), daemon=True)
        t.start()
        self.threads.append(t)
        return ours

    def _serve(self, sock: socket.socket, reply: bytes | Callable[[socket.socket], None]) -> None:
        with sock:
            req = b""
            while b"\r\n\r\n" not in req:
                data = sock.recv(4096)
                if not data:
                    return
                req += data
            self.requests.append(req)
            try:
                if callable(reply):
                    reply(sock)
                else:
                    sock.sendall(reply)
            except OSError:
                pass


def fetch(server: FakeServer, url: Url = URL, stall: float = 5.0) -> bytes:
    resp = httpget.open_url(url, connect=server, stall=stall)
    try:
        return b"".join(httpget.body(resp, deadline=float("inf")))
    finally:
        resp.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_content_length_body_and_request_line() -> None:
    server = FakeServer(ok(b"x" * 200_000))
    assert fetch(server) == b"x" * 200_000
    req = server.requests[0]
    assert req.startswith(b"GET /img/root.squashfs HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n")
    assert b"Connection: close" in req
    assert server.addrs == [("10.0.0.1", 8080)]


def test_chunked_body_with_extensions_and_trailers() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    assert fetch(FakeServer(reply)) == b"hello world"


def test_close_delimited_body_http10() -> None:
    assert fetch(FakeServer(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc")) == b"abc"


def test_redirects_are_followed_relative_and_absolute() -> None:
    server = FakeServer(
        b"HTTP/1.1 302 Found\r\nLocation: /other.squashfs\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 301 Moved\r\nLocation: http://10.0.0.2/final.squashfs\r\n\r\n",
        ok(b"data"),
    )
    resp = httpget.open_url(URL, connect=server)
    assert str(resp.url) == "http://10.0.0.2/final.squashfs"
    assert b"".join(httpget.body(resp, float("inf"))) == b"data"
    resp.close()
    assert server.addrs == [("10.0.0.1", 8080), ("10.0.0.1", 8080), ("10.0.0.2", 80)]
    assert server.requests[1].startswith(b"GET /other.squashfs ")


def test_redirects_are_bounded() -> None:
    hops = [
        b"HTTP/1.1 302 Found\r\nLocation: /hop-%d\r\n\r\n" % i
        for i in range(httpget.MAX_REDIRECTS + 2)
    ]
    server = FakeServer(*hops)
    with pytest.raises(HttpError, match="more than 5 redirects") as err:
        fetch(server)
    assert not err.value.transient
    assert len(server.addrs) == httpget.MAX_REDIRECTS + 1


def test_redirect_loop_stops_at_once() -> None:
    loop = b"HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n"
    server = FakeServer(*[loop] * 3)
    with pytest.raises(HttpError, match="redirect loop: .*/again redirects to .*/again") as err:
        fetch(server)
    assert not err.value.transient and len(server.addrs) == 2


def test_redirect_to_https_is_refused_with_the_reason() -> None:
    server = FakeServer(b"HTTP/1.1 302 Found\r\nLocation: https://x/y.squashfs\r\n\r\n")
    with pytest.raises(HttpError, match="no TLS"):
        fetch(server)


@pytest.mark.parametrize(
    ("status", "transient"), [(404, False), (403, False), (503, True), (500, True), (429, True)]
)
def test_error_status_says_whether_to_retry(status: int, transient: bool) -> None:
    with pytest.raises(HttpError, match=f"status {status}") as err:
        fetch(FakeServer(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status))
    assert err.value.transient is transient


def test_connection_refused_is_transient() -> None:
    with pytest.raises(HttpError, match="cannot connect") as err:
        fetch(FakeServer())
    assert err.value.transient


def test_short_body_is_an_error_not_a_truncated_image() -> None:
    with pytest.raises(HttpError, match="missing") as err:
        fetch(FakeServer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
    assert err.value.transient


def test_stall_timeout() -> None:
    def stall(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        threading.Event().wait(1.0)

    with pytest.raises(HttpError, match="stalled") as err:
        fetch(FakeServer(stall), stall=0.2)
    assert err.value.transient


def test_total_deadline() -> None:
    resp = httpget.open_url(URL, connect=FakeServer(ok(b"x" * 10)))
    with pytest.raises(HttpError, match="longer than allowed"):
        list(httpget.body(resp, deadline=0.0, clock=lambda: 1.0))
    resp.close()


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


@pytest.mark.parametrize(
    ("location", "host", "port", "path"),
    [
        (b"//10.0.0.2:0081/x.squashfs", "10.0.0.2", 81, "/x.squashfs"),
        (b"http://10.0.0.2:81?q", "10.0.0.2", 81, "/?q"),
        (b"HTTP://[fd00::2]/x#frag", "fd00::2", 80, "/x"),
        (b"other.squashfs", "10.0.0.1", 8080, "/img/other.squashfs"),
        (b"../up/./x?y=1", "10.0.0.1", 8080, "/up/x?y=1"),
        (b"../../../../x", "10.0.0.1", 8080, "/x"),
        (b"?mirror=2", "10.0.0.1", 8080, "/img/root.squashfs?mirror=2"),
    ],
)
def test_location_forms_resolve(location: bytes, host: str, port: int, path: str) -> None:
    server = FakeServer(b"HTTP/1.1 301 Moved\r\nLocation: " + location + b"\r\n\r\n", ok(b"x"))
    resp = httpget.open_url(URL, connect=server)
    resp.close()
    assert (resp.url.host, resp.url.port, resp.url.path) == (host, port, path)
    assert server.addrs[1] == (host, port)


def test_error_after_a_redirect_names_where() -> None:
    server = FakeServer(
        b"HTTP/1.1 302 F\r\nLocation: /b.squashfs\r\n\r\n", b"HTTP/1.1 404 NF\r\n\r\n"
    )
    with pytest.raises(
        HttpError, match=r"^redirected to http://10.0.0.1:8080/b.squashfs: HTTP status 404"
    ):
        fetch(server)


@pytest.mark.parametrize(("end", "match"), [("reset", "receive failed"), ("stall", "stalled")])
def test_reset_and_stall_in_the_body_are_transient(end: str, match: str) -> None:
    world = World([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], end, 1 << 20)
    with pytest.raises(HttpError, match=f"^body: {match}") as err:
        fuzz_httpget.fetch(world, URL)
    assert err.value.transient


def test_the_deadline_bounds_a_server_that_trickles_headers() -> None:
    """A byte every little while never trips the stall timeout; the deadline still holds."""
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # each look at the clock: one more second went by
        return now[0]

    def trickle(sock: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX: " + b"y" * 5000:
            sock.sendall(bytes([byte]))

    with pytest.raises(HttpError, match="took longer than allowed") as err:
        httpget.open_url(URL, connect=FakeServer(trickle), stall=5.0, deadline=50.0, clock=clock)
    assert not err.value.transient and now[0] < 200


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


def test_url_host_header_and_str() -> None:
    url = parse_url("http://[fd00::1]:81/a.tar.zst?x=1")
    assert (url.host, url.port, url.path) == ("fd00::1", 81, "/a.tar.zst?x=1")
    assert url.host_header == "[fd00::1]:81" and str(url) == "http://[fd00::1]:81/a.tar.zst?x=1"
    assert parse_url("http://h/r.sqfs").host_header == "h"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("http://h:0000065536/r.squashfs", "port 1..65535"),  # checked on the whole value
        ("http://h:65536/r.squashfs", "port 1..65535"),
        ("http://h:0/r.squashfs", "port 1..65535"),
        ("http://h:²/r.squashfs", "printable ASCII"),
        ("http://h:٣/r.squashfs", "printable ASCII"),
        ("http://h\udcff/r.squashfs", "printable ASCII"),  # a non-UTF-8 byte, surrogateescaped
        ("http://h/r\x1b[2J.squashfs", "printable ASCII"),
        ("http://[fe80::1%\udce9]/r.squashfs", "printable ASCII"),
        ("http://[fe80::1%a/b]/r.squashfs", "[<IPv6 address>]"),
        ("http://[fe80::1%eth0 x]/r.squashfs", "printable ASCII"),
        ("http://[fd00::1]x/r.squashfs", "[<IPv6 address>]"),
        ("http://[fd00::1/r.squashfs", "[<IPv6 address>]"),
    ],
)
def test_parse_url_refuses_with_a_printable_line(text: str, words: str) -> None:
    with pytest.raises(ParamError) as err:
        parse_url(text)
    assert words in err.value.expected and str(err.value).isprintable()


def test_parse_url_keeps_what_the_port_means() -> None:
    assert parse_url("http://h:0008080/r.squashfs").port == 8080
    assert parse_url("http://h:65535/r.squashfs").port == 65535
    url = parse_url("HTTP://[fe80::1%eth0]:81/r.squashfs?x=1#frag")
    assert (url.host, url.port, url.path) == ("fe80::1%eth0", 81, "/r.squashfs?x=1")
    assert url.as_given == "HTTP://[fe80::1%eth0]:81/r.squashfs?x=1#frag"
    assert url == parse_url(str(url))


def test_resolve_literals_without_a_resolver() -> None:
    assert httpget.resolve("10.0.0.1", 80) == [(socket.AF_INET, ("10.0.0.1", 80))]
    assert httpget.resolve("fd00::1", 81) == [(socket.AF_INET6, ("fd00::1", 81))]
    assert httpget.resolve("localhost", 8)[0][1][1] == 8


def test_real_socket_to_a_local_listener() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(ok(b"real"))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    resp = httpget.open_url(parse_url(f"http://127.0.0.1:{port}/r.squashfs"))
    assert b"".join(httpget.body(resp, float("inf"))) == b"real"
    resp.close()
    srv.close()
