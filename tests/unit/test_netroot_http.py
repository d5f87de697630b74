"""The plain-socket HTTP client behind mosroot=: framing, redirects, errors, fuzz."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from init import httpget
from init.httpget import HttpError
from init.netrootcfg import Url, parse_url

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


def test_redirect_loop_is_bounded() -> None:
    loop = b"HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n"
    server = FakeServer(*[loop] * (httpget.MAX_REDIRECTS + 2))
    with pytest.raises(HttpError, match="redirects") as err:
        fetch(server)
    assert not err.value.transient
    assert len(server.addrs) == httpget.MAX_REDIRECTS + 1


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
