"""The plain-socket HTTP client behind mosroot=: framing, redirects, errors, URLs."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.fuzz import httpget as fuzz_httpget
from bench.fuzz.httpget import World
from init import httpget
from init.httpparse import HttpError
from init.netrootcfg import parse_url
from mosnet.base.errors import ParamError
from tests.unit.helpers.netroot_http import URL, FakeServer, fetch, ok


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
