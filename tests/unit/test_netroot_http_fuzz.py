"""Fuzz: nothing a server (or a redirect chain) sends makes the mosroot= fetch
raise anything but HttpError, and a valid reply gives its body byte-exact.

Two engines, as for DHCP: the seeded mutation loop in bench/fuzz/httpget.py
runs MOSNET_FUZZ_CASES cases (default 100_000; each a fetch over in-memory
connections plus a parse_url and a resolve_reference) because a plain loop
costs ~0.3 ms a case where a hypothesis example costs ~1 ms; hypothesis
adds MOSNET_FUZZ_EXAMPLES examples per property (default 1000) for
shrinking and its own input shapes. A differential check fetches files from
Python's http.server and a chunked server on loopback with httpget and with
urllib. ``python -m bench.fuzz.httpget --cases 1000000`` is the bigger run.
"""

from __future__ import annotations

import http.server
import os
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import httpget as fuzz_httpget
from bench.fuzz import httpparts as fuzz_httpparts
from bench.fuzz.httpget import World
from init import httpget
from init.httpparse import HttpError
from init.netrootcfg import Url, parse_url, resolve_reference
from mosnet.base.errors import ParamError

CASES = int(os.environ.get("MOSNET_FUZZ_CASES", "100000"))
EXAMPLES = int(os.environ.get("MOSNET_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
URL = parse_url("http://10.0.0.1/root.squashfs")


def _fetch(world: World, url: Url = URL) -> bytes | HttpError:
    try:
        return fuzz_httpget.fetch(world, url)[1]
    except HttpError as exc:
        fuzz_httpget._check_error(exc)  # one printable line, transient fits the cause
        return exc


def test_mutation_fuzz_100k_cases(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    stats = fuzz_httpget.run(CASES, seed=int(os.environ.get("MOSNET_FUZZ_SEED", "1")))
    took = time.monotonic() - start
    with capsys.disabled():
        print(
            f"\nhttp mutation fuzz: {stats.cases} cases in {took:.1f} s (exact {stats.exact}, "
            f"bodies after mutation {stats.mutated_bodies}, redirected {stats.redirected}, "
            f"error kinds {len(stats.errors)})"
        )
    assert stats.cases == CASES
    # enough of each kind that the fuzz reaches past the status line: exact
    # bodies, bodies that survived a mutation, redirects, chunked framing
    assert stats.exact > CASES // 10 and stats.mutated_bodies > CASES // 50
    assert stats.redirected > CASES // 20 and stats.chunked > CASES // 20
    assert stats.urls > CASES // 10 and len(stats.errors) > 40


@FUZZ
@given(replies=st.lists(st.binary(max_size=400), min_size=1, max_size=3),
       end=st.sampled_from(["close", "stall", "reset"]), piece=st.integers(1, 500))  # fmt: skip
def test_any_bytes_from_any_server(replies: list[bytes], end: str, piece: int) -> None:
    got = _fetch(World(replies, end, piece))
    assert isinstance(got, HttpError) or len(got) <= sum(map(len, replies))


@st.composite
def _valid_reply(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A 200 reply built from hypothesis' choices, so a failure shrinks to a small one."""
    data = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    reason = draw(st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b))
    head = b"HTTP/1.%d 200 %s\r\n" % (draw(st.integers(0, 9)), reason)
    head += b"".join(b"X-H%d: %s\r\n" % (i, v.strip(b" \t")) for i, v in enumerate(
        draw(st.lists(st.binary(max_size=30).filter(lambda b: not set(b) & {10, 13}), max_size=3))
    ))  # fmt: skip
    if framing == "length":
        zeros = b"0" * draw(st.integers(0, 3))
        return head + b"Content-Length: %s%d\r\n\r\n" % (zeros, len(data)) + data, data
    if framing == "close":
        return head + b"\r\n" + data, data
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6))))
    body, last = b"", 0
    for cut in [*(c for c in cuts if c < len(data)), len(data)]:
        if cut > last:
            ext = draw(st.sampled_from([b"", b";x=1", b" ;y"]))
            body += b"%x%s\r\n%s\r\n" % (cut - last, ext, data[last:cut])
            last = cut
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n", data


@FUZZ
@given(reply=_valid_reply(), piece=st.integers(1, 4096))
def test_valid_replies_give_the_exact_body(reply: tuple[bytes, bytes], piece: int) -> None:
    data, want = reply
    assert _fetch(World([data], "close", piece)) == want


@FUZZ
@given(seed=st.integers(0, 2**64), noise=st.binary(max_size=24), at=st.integers(0, 10**6))
def test_mutated_chains_raise_only_httperror(seed: int, noise: bytes, at: int) -> None:
    rnd = random.Random(seed)
    chain = fuzz_httpparts.chain(rnd)
    replies = [fuzz_httpparts.mutate(rnd, r) for r in chain.replies]
    i = at % len(replies)
    pos = at % (len(replies[i]) + 1)
    replies[i] = replies[i][:pos] + noise + replies[i][pos + len(noise) * (at & 1) :]
    _fetch(World(replies, rnd.choice(["close", "stall"]), rnd.choice([1 << 20, 7])), chain.url)


_chars = st.one_of(
    st.characters(),  # any code point but a surrogate
    st.integers(0xDC80, 0xDCFF).map(chr),  # a non-UTF-8 command-line byte (surrogateescape)
    st.sampled_from("0123456789:/[]@%#?.²٣"),
)
_urlish = st.builds(
    "".join,
    st.lists(st.one_of(st.sampled_from(["http://", "HTTP://", "https://", "[fd00::1]", "h",
                                        ":", ":0000065536", ":80", "/r.squashfs", "%eth0"]),
                       st.text(_chars, max_size=4)), max_size=6),
)  # fmt: skip


@FUZZ
@given(text=st.one_of(st.text(_chars, max_size=80), _urlish))
def test_parse_url_is_total(text: str) -> None:
    try:
        url = parse_url(text)
    except ParamError as exc:
        assert str(exc).isprintable() and exc.param == "mosroot"
        return
    assert 0 < url.port < 65536 and str(url).isascii() and str(url).isprintable()
    assert parse_url(str(url)) == url and url.as_given == text


@FUZZ
@given(ref=st.one_of(st.text(_chars, max_size=40), _urlish))
def test_resolve_reference_is_total(ref: str) -> None:
    base = parse_url("http://[fd00::1]:8080/a/b/root.squashfs?x=1")
    try:
        url = resolve_reference(base, ref)
    except ParamError as exc:
        assert str(exc).isprintable() and exc.param == "Location"
        return
    assert 0 < url.port < 65536 and url.path.startswith("/") and str(url).isprintable()


# -------------------------------------------------- differential: real servers


BODY = bytes(random.Random(7).randbytes(300_001))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "sub/../chunked")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            rnd, pos = random.Random(1), 0
            while pos < len(BODY):
                size = rnd.choice((1, 100, 4096, 70_000))
                part = BODY[pos : pos + size]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                pos += size
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http.server.SimpleHTTPRequestHandler for files, _Handler for framing."""
    www = tmp_path_factory.mktemp("www")
    (www / "root.squashfs").write_bytes(BODY)

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(www), **kw)

        def log_message(self, format: str, *args: object) -> None:
            pass

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Files, _Handler)]
    for s in servers:
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()
    yield " ".join(f"127.0.0.1:{s.server_address[1]}" for s in servers)
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("which", ["files/root.squashfs", "framing/length", "framing/chunked",
                                   "framing/redirect"])  # fmt: skip
def test_same_bytes_as_urllib_from_a_real_server(server: str, which: str) -> None:
    files, framing = server.split()
    kind, path = which.split("/")
    text = f"http://{files if kind == 'files' else framing}/{path}"
    resp = httpget.open_url(parse_url(text), stall=10.0, deadline=time.monotonic() + 60)
    try:
        ours = b"".join(httpget.body(resp, time.monotonic() + 60))
    finally:
        resp.close()
    with urllib.request.urlopen(text, timeout=10) as theirs:
        assert ours == theirs.read() == BODY
