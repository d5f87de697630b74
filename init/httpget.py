"""A small HTTP/1.1 GET client on a plain socket, for fetching a root image.

Why not http.client: it drags email.parser and friends into the image for a
job that needs a status line, three headers and a body. Everything the
server sends is untrusted input, parsed strictly: the status line
(``HTTP/1.x``, three ASCII digits; interim 1xx responses are skipped), header
lines (RFC 9110 tokens as names, obs-fold continuations unfolded, duplicates
combined as a list), Content-Length (ASCII digits, all copies equal),
Transfer-Encoding (``chunked`` only), chunk-size lines, trailers and
Location (absolute, ``//host`` or relative, resolved by
``netrootcfg.resolve_reference``). The only exception that leaves
``open_url`` and ``body`` is HttpError; its message names the stage or header
and what was expected, quoting the server's bytes with ``shown``.
Bounds: at most ``MAX_HEADER_LINES`` lines of ``MAX_LINE`` bytes per head,
``MAX_INTERIM`` interim responses, ``MAX_REDIRECTS`` redirects, the body in
pieces of at most ``CHUNK`` bytes; every receive waits at most ``stall``
seconds and never past ``deadline``.
"""

from __future__ import annotations

import io
import ipaddress
import math
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from init.netrootcfg import Url, resolve_reference
from mosnet.errors import MosnetError, ParamError, shown

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_LINE = 8192
MAX_HEADER_LINES = 100
MAX_REDIRECTS = 5
MAX_INTERIM = 5  # 1xx responses (100 Continue, 103 Early Hints) before the final one
MAX_LENGTH = 1 << 44  # 16 TiB: a bigger Content-Length is nonsense, not a size
CHUNK = 1 << 16
REDIRECTS = (301, 302, 303, 307, 308)
TRANSIENT_STATUS = (408, 425, 429, 500, 502, 503, 504)

_VERSION_RE = re.compile(rb"HTTP/1\.[0-9]")
_CODE_RE = re.compile(rb"[1-5][0-9][0-9]")
_TOKEN_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2
_CHUNK_SIZE_RE = re.compile(rb"0*([0-9A-Fa-f]{1,12})[ \t]*(;.*)?", re.DOTALL)
_DECIMAL_RE = re.compile(r"0*([0-9]{1,15})")  # a str pattern: [0-9] is ASCII only


class Conn(Protocol):
    """What httpget needs of a connected socket (a fake in unit tests)."""

    def settimeout(self, value: float | None, /) -> None: ...
    def sendall(self, data: bytes, /) -> None: ...
    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, /) -> int: ...
    def close(self) -> None: ...


Connect = Callable[[tuple[str, int], float], Conn]
Clock = Callable[[], float]


class HttpError(MosnetError):
    """The fetch failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _bad(message: str) -> HttpError:
    """The server sent something malformed: asking again will not fix it."""
    return HttpError(message, transient=False)


def _shown(data: bytes) -> str:
    """Server bytes for an error message: non-ASCII bytes as \\xNN, bounded."""
    return shown(data.decode("ascii", "surrogateescape"), 80)


@dataclass
class Timing:
    """The time bounds of one fetch, shared by its connections."""

    stall: float  # the longest wait for one receive
    deadline: float  # on ``clock``: nothing waits past it
    clock: Clock

    def timeout(self, stage: str) -> float:
        """Seconds the next wait may take; HttpError once the deadline has passed."""
        left = self.deadline - self.clock()
        if left <= 0:
            raise _bad(f"{stage}: the download took longer than allowed")
        return min(self.stall, left)


class _Wire(io.RawIOBase):
    """The connection as a raw stream; a failed receive is an HttpError naming ``stage``."""

    def __init__(self, conn: Conn, timing: Timing) -> None:
        super().__init__()
        self.conn, self.timing = conn, timing
        self.stage = "connect"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            self.conn.settimeout(self.timing.timeout(self.stage))
            return self.conn.recv_into(buffer)
        except TimeoutError:
            if self.timing.clock() >= self.timing.deadline:
                raise _bad(f"{self.stage}: the download took longer than allowed") from None
            stall = f"{self.stage}: stalled, no data for {self.timing.stall:g} s"
            raise HttpError(stall, transient=True) from None
        except OSError as exc:
            raise HttpError(f"{self.stage}: receive failed: {exc}", transient=True) from None

    def send(self, data: bytes) -> None:
        self.stage = "request"
        try:
            self.conn.settimeout(self.timing.timeout(self.stage))
            self.conn.sendall(data)
        except OSError as exc:
            raise HttpError(f"request: send failed: {exc}", transient=True) from None

    def close(self) -> None:
        if not self.closed:
            try:
                self.conn.close()
            except OSError:
                pass
        super().close()


class Stream:
    """Lines and body pieces from one connection, each read naming its stage."""

    def __init__(self, conn: Conn, timing: Timing) -> None:
        self.wire = _Wire(conn, timing)
        self.reader = io.BufferedReader(self.wire)

    def line(self, stage: str) -> bytes:
        """One line without its CRLF (or bare LF)."""
        self.wire.stage = stage
        line = self.reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise _bad(f"{stage}: a line longer than {MAX_LINE} bytes")
        if not line.endswith(b"\n"):
            where = " in the middle of a line" if line else ""
            raise HttpError(f"{stage}: connection closed early{where}", transient=True)
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    def piece(self, stage: str, size: int) -> bytes:
        """Up to ``size`` bytes, b"" at the end of the stream."""
        self.wire.stage = stage
        return self.reader.read1(size)

    def close(self) -> None:
        self.reader.close()  # closes the wire and the connection


@dataclass
class Response:
    url: Url  # after redirects
    status: int
    length: int | None  # Content-Length, None when chunked or close-delimited
    chunked: bool
    stream: Stream

    def close(self) -> None:
        self.stream.close()


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
    """The first address that answers; all tries together take at most ``timeout``."""
    end = time.monotonic() + timeout
    last: OSError = OSError(f"no address for {addr[0]}")
    for family, sockaddr in resolve(*addr):
        left = end - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(left)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def parse_status(line: bytes) -> tuple[int, bytes]:
    """``HTTP/1.1 200 OK`` -> (200, b"OK"); the reason phrase may be anything."""
    version, _, rest = line.partition(b" ")
    if not _VERSION_RE.fullmatch(version):
        raise _bad(f"status line {_shown(line)}: not HTTP/1.x, expected HTTP/1.1 <code> <reason>")
    code, _, reason = rest.partition(b" ")
    if not _CODE_RE.fullmatch(code):
        raise _bad(f"status line {_shown(line)}: bad status code, expected 3 digits 100..599")
    return int(code), reason


def read_headers(stream: Stream, stage: str = "headers") -> dict[str, str]:
    """Header lines up to the empty line: lower-case name -> value.

    Values are ASCII with other bytes as lone surrogates (``surrogateescape``),
    so nothing non-ASCII passes a check by accident and ``shown`` prints the byte.
    """
    fields: list[tuple[bytes, bytes]] = []
    for _ in range(MAX_HEADER_LINES):
        line = stream.line(stage)
        if not line:
            return _combine(fields, stage)
        if line[:1] in (b" ", b"\t"):  # obs-fold: RFC 9112 5.2 says replace with SP
            if not fields:
                raise _bad(f"{stage}: continuation line {_shown(line)} before any header")
            name, value = fields.pop()
            fields.append((name, (value + b" " + line.strip(b" \t")).strip(b" ")))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN_RE.fullmatch(name):
            raise _bad(f"{stage}: malformed header line {_shown(line)}, expected <name>: <value>")
        fields.append((name.lower(), value.strip(b" \t")))
    raise _bad(f"{stage}: more than {MAX_HEADER_LINES} header lines")


def _combine(fields: list[tuple[bytes, bytes]], stage: str) -> dict[str, str]:
    """Repeated fields join as a list (RFC 9110 5.3); two Locations must agree."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in fields:
        name = raw_name.decode("ascii")  # a token: ASCII by _TOKEN_RE
        value = raw_value.decode("ascii", "surrogateescape")
        if name not in headers:
            headers[name] = value
        elif name != "location":
            headers[name] += ", " + value
        elif headers[name] != value:
            raise _bad(
                f"{stage}: conflicting Location headers {shown(headers[name])}, {shown(value)}"
            )
    return headers


def content_length(value: str) -> int:
    """``Content-Length``: ASCII digits; copies (``42, 042``) must agree."""
    items = [item.strip(" \t") for item in value.split(",")]
    matches = [_DECIMAL_RE.fullmatch(item) for item in items if item]
    if not matches or None in matches:
        expected = f"a decimal number of bytes up to {MAX_LENGTH}"
        raise _bad(f"header Content-Length: bad value {shown(value)}, expected {expected}")
    lengths = {int(m[1]) for m in matches if m}
    if len(lengths) > 1:
        raise _bad(f"header Content-Length: conflicting values {shown(value)}")
    length = lengths.pop()
    if length > MAX_LENGTH:
        raise _bad(f"header Content-Length: {length} bytes, more than {MAX_LENGTH} is no size")
    return length


def body_framing(headers: dict[str, str]) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?); Transfer-Encoding wins (RFC 9112 6.3)."""
    te = headers.get("transfer-encoding")
    if te is not None:
        codings = [c.strip(" \t").lower() for c in te.split(",") if c.strip(" \t")]
        if codings != ["chunked"]:
            raise _bad(f"header Transfer-Encoding: {shown(te)} is not supported, expected chunked")
        return None, True
    cl = headers.get("content-length")
    return (None if cl is None else content_length(cl)), False


def chunk_size(line: bytes) -> int:
    """``1a2b[;ext]`` -> 0x1a2b; leading zeros are fine, extensions ignored."""
    match = _CHUNK_SIZE_RE.fullmatch(line)
    size = int(match[1], 16) if match else -1
    if not 0 <= size <= MAX_LENGTH:
        expected = f"hex digits up to {MAX_LENGTH:x}, then ;extensions"
        raise _bad(f"chunk size line {_shown(line)}: expected {expected}")
    return size


def redirect_target(base: Url, location: str | None) -> Url:
    """The URL a redirect names: absolute http://, //host/… or relative to ``base``."""
    if not location:
        raise _bad("redirect without a Location header")
    try:
        return resolve_reference(base, location, "Location")
    except ParamError as exc:
        raise _bad(f"header {exc}") from None


def _request(url: Url) -> bytes:
    return (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.host_header}\r\n"
        "User-Agent: mosnet-init\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def read_head(stream: Stream) -> tuple[int, bytes, dict[str, str]]:
    """Status and headers of the final response, interim 1xx ones skipped."""
    for _ in range(MAX_INTERIM + 1):
        status, reason = parse_status(stream.line("status line"))
        headers = read_headers(stream)
        if status >= 200 or status == 101:
            return status, reason, headers
    raise _bad(f"status line: more than {MAX_INTERIM} interim 1xx responses")


def _dial(url: Url, connect: Connect, timing: Timing) -> Stream:
    try:
        return Stream(connect((url.host, url.port), timing.timeout("connect")), timing)
    except OSError as exc:
        raise HttpError(f"cannot connect to {url.host_header}: {exc}", transient=True) from None


def _open_once(url: Url, connect: Connect, timing: Timing) -> Response | Url:
    """One request: the 200 Response, or the URL a redirect names."""
    stream = _dial(url, connect, timing)
    try:
        stream.wire.send(_request(url))
        status, reason, headers = read_head(stream)
        if status == 200:
            return Response(url, status, *body_framing(headers), stream)
    except BaseException:
        stream.close()
        raise
    stream.close()
    if status in REDIRECTS:
        return redirect_target(url, headers.get("location"))
    why = f"HTTP status {status} {_shown(reason)}" if reason else f"HTTP status {status}"
    raise HttpError(f"{why}, expected 200", transient=status in TRANSIENT_STATUS)


def open_url(
    url: Url,
    *,
    connect: Connect = _connect,
    stall: float = 30.0,
    deadline: float = math.inf,
    clock: Clock = time.monotonic,
) -> Response:
    """GET ``url``, following up to MAX_REDIRECTS redirects; a 200 Response or HttpError."""
    timing = Timing(stall, deadline, clock)
    seen = {url}
    for hop in range(MAX_REDIRECTS + 1):
        try:
            got = _open_once(url, connect, timing)
        except HttpError as exc:
            if hop == 0:
                raise
            raise HttpError(f"redirected to {url}: {exc}", transient=exc.transient) from None
        if isinstance(got, Response):
            return got
        if got in seen:
            raise _bad(f"redirect loop: {url} redirects to {got}, fetched before")
        seen.add(got)
        url = got
    raise _bad(f"more than {MAX_REDIRECTS} redirects")


def _exactly(stream: Stream, size: int, stage: str) -> Iterator[bytes]:
    while size > 0:
        data = stream.piece(stage, min(size, CHUNK))
        if not data:
            why = f"{stage}: connection closed with {size} bytes of the body missing"
            raise HttpError(why, transient=True)
        size -= len(data)
        yield data


def _chunked(stream: Stream) -> Iterator[bytes]:
    while True:
        size = chunk_size(stream.line("chunk size line"))
        if size == 0:
            read_headers(stream, "trailers")  # up to the final empty line
            return
        yield from _exactly(stream, size, "chunk data")
        if stream.line("chunk end"):
            raise _bad("chunk end: more data than the chunk size said, expected CRLF")


def _until_close(stream: Stream) -> Iterator[bytes]:
    while data := stream.piece("body", CHUNK):
        yield data


def body(resp: Response, deadline: float, clock: Clock = time.monotonic) -> Iterator[bytes]:
    """The body in pieces; HttpError on a stall, a short body or past ``deadline``."""
    timing = resp.stream.wire.timing
    timing.deadline, timing.clock = min(timing.deadline, deadline), clock
    if resp.chunked:
        parts = _chunked(resp.stream)
    elif resp.length is not None:
        parts = _exactly(resp.stream, resp.length, "body")
    else:
        parts = _until_close(resp.stream)
    for data in parts:
        timing.timeout("body")  # buffered data does not wait, so check here too
        yield data
