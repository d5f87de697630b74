"""A small HTTP/1.1 GET client on a plain socket, for fetching a root image.

Why not http.client: it drags email.parser and friends into the image for a
job that needs a status line, three headers and a body. This client reads
at most ``MAX_HEADER_LINES`` lines of at most ``MAX_LINE`` bytes, accepts a
body by Content-Length, chunked transfer coding or close-delimited, follows
a bounded number of redirects to http:// URLs, and treats anything it does
not understand as an error, never as data. Timeouts: the socket times out
after ``stall`` seconds without a byte; ``deadline`` bounds the whole fetch.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from init.netrootcfg import Url, parse_url
from mosnet.errors import MosnetError, ParamError

MAX_LINE = 8192
MAX_HEADER_LINES = 100
MAX_REDIRECTS = 5
MAX_LENGTH = 1 << 44  # 16 TiB: a bigger Content-Length is nonsense, not a size
CHUNK = 1 << 16
REDIRECTS = (301, 302, 303, 307, 308)
TRANSIENT_STATUS = (408, 425, 429, 500, 502, 503, 504)

Connect = Callable[[tuple[str, int], float], socket.socket]
Clock = Callable[[], float]


class HttpError(MosnetError):
    """The fetch failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Response:
    url: Url  # after redirects
    status: int
    length: int | None  # Content-Length, None when chunked or close-delimited
    chunked: bool
    reader: io.BufferedReader
    sock: socket.socket

    def close(self) -> None:
        for obj in (self.reader, self.sock):
            try:
                obj.close()
            except OSError:
                pass


def resolve(host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
    """(family, sockaddr) pairs; an address literal needs no resolver.

    The host goes to getaddrinfo as bytes: for a str CPython runs the idna
    codec, which the image leaves out (encodings are loaded on demand).
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
        return [(fam, (str(sa[0]), int(sa[1]))) for fam, _, _, _, sa in infos]
    return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]


def _connect(addr: tuple[str, int], timeout: float) -> socket.socket:
    last: OSError = OSError(f"no address for {addr[0]}")
    for family, sockaddr in resolve(*addr):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def _readline(reader: io.BufferedReader, what: str) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HttpError(f"{what}: line longer than {MAX_LINE} bytes", transient=False)
    if not line:
        raise HttpError(f"{what}: connection closed early", transient=True)
    return line.rstrip(b"\r\n")


def parse_status(line: bytes) -> int:
    """``HTTP/1.1 200 OK`` -> 200."""
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise HttpError(f"not an HTTP/1.x status line: {line[:80]!r}", transient=False)
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise HttpError(f"bad status code in {line[:80]!r}", transient=False)
    return int(code)


def read_headers(reader: io.BufferedReader) -> dict[str, str]:
    """Header lines up to the empty line; names lower-cased, duplicates must agree."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = _readline(reader, "headers")
        if not line:
            return headers
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise HttpError(f"malformed header line {line[:80]!r}", transient=False)
        key = name.decode("ascii", "replace").lower()
        text = value.strip().decode("latin-1")
        if key in headers and headers[key] != text and key in ("content-length", "location"):
            raise HttpError(f"conflicting {key} headers", transient=False)
        headers[key] = text
    raise HttpError(f"more than {MAX_HEADER_LINES} header lines", transient=False)


def body_framing(headers: dict[str, str]) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?) from the headers."""
    te = headers.get("transfer-encoding")
    if te is not None:
        if te.lower() != "chunked":
            raise HttpError(f"unsupported Transfer-Encoding {te!r}", transient=False)
        return None, True
    cl = headers.get("content-length")
    if cl is None:
        return None, False
    if not cl.isdigit() or len(cl) > 15 or int(cl) > MAX_LENGTH:
        raise HttpError(f"bad Content-Length {cl[:40]!r}", transient=False)
    return int(cl), False


def redirect_target(base: Url, location: str | None) -> Url:
    """Resolve a Location header: absolute http:// or an absolute path."""
    if not location:
        raise HttpError("redirect without a Location header", transient=False)
    if location.startswith("/") and not location.startswith("//"):
        return Url(base.host, base.port, location)
    try:
        return parse_url(location, "Location")
    except ParamError as exc:
        raise HttpError(f"redirect to an unusable URL: {exc}", transient=False) from None


def _request(url: Url) -> bytes:
    return (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.host_header}\r\n"
        "User-Agent: mosnet-init\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def _open_once(url: Url, connect: Connect, stall: float) -> tuple[int, dict[str, str], Response]:
    try:
        sock = connect((url.host, url.port), stall)
    except OSError as exc:
        raise HttpError(f"cannot connect to {url.host_header}: {exc}", transient=True) from None
    try:
        sock.settimeout(stall)
        sock.sendall(_request(url))
        reader = sock.makefile("rb")
        status = parse_status(_readline(reader, "status line"))
        headers = read_headers(reader)
    except (OSError, HttpError) as exc:
        sock.close()
        if isinstance(exc, HttpError):
            raise
        raise HttpError(f"{url}: {exc}", transient=True) from None
    length, chunked = (None, False) if status != 200 else body_framing(headers)
    return status, headers, Response(url, status, length, chunked, reader, sock)


def open_url(url: Url, *, connect: Connect = _connect, stall: float = 30.0) -> Response:
    """GET ``url``, following up to MAX_REDIRECTS redirects; a 200 Response or HttpError."""
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, resp = _open_once(url, connect, stall)
        if status == 200:
            return resp
        resp.close()
        if status in REDIRECTS:
            url = redirect_target(url, headers.get("location"))
            continue
        raise HttpError(f"{url}: HTTP status {status}", transient=status in TRANSIENT_STATUS)
    raise HttpError(f"more than {MAX_REDIRECTS} redirects", transient=False)


def _read_exact(reader: io.BufferedReader, n: int) -> Iterator[bytes]:
    while n > 0:
        data = reader.read1(min(n, CHUNK))
        if not data:
            raise HttpError(f"connection closed with {n} bytes of the body missing", transient=True)
        n -= len(data)
        yield data


def _chunked(reader: io.BufferedReader) -> Iterator[bytes]:
    while True:
        line = _readline(reader, "chunk size")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 12 or size_text.strip(b"0123456789abcdefABCDEF"):
            raise HttpError(f"bad chunk size line {line[:40]!r}", transient=False)
        size = int(size_text, 16)
        if size == 0:
            read_headers(reader)  # trailers, up to the final empty line
            return
        yield from _read_exact(reader, size)
        if _readline(reader, "chunk end"):
            raise HttpError("chunk not followed by CRLF", transient=False)


def _until_close(reader: io.BufferedReader) -> Iterator[bytes]:
    while True:
        data = reader.read1(CHUNK)
        if not data:
            return
        yield data


def body(resp: Response, deadline: float, clock: Clock = time.monotonic) -> Iterator[bytes]:
    """The body in pieces; HttpError on a stall, a short body or past ``deadline``."""
    if resp.chunked:
        parts = _chunked(resp.reader)
    elif resp.length is not None:
        parts = _read_exact(resp.reader, resp.length)
    else:
        parts = _until_close(resp.reader)
    try:
        for data in parts:
            if clock() > deadline:
                raise HttpError("download took longer than allowed", transient=False)
            yield data
    except TimeoutError:
        raise HttpError("stalled: no data within the stall timeout", transient=True) from None
    except OSError as exc:
        raise HttpError(f"receive failed: {exc}", transient=True) from None
