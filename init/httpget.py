"""A small HTTP/1.1 GET client on a plain socket, for fetching a root image.

Why not http.client: it drags email.parser and friends into the image for a
job that needs a status line, three headers and a body. This module is the
connection side: resolve and connect, send the request, follow redirects
(Location absolute, ``//host`` or relative, resolved by
``netrootcfg.resolve_reference``; at most ``MAX_REDIRECTS``), and time every
receive: each waits at most ``stall`` seconds and never past ``deadline``.
What the server sends is parsed by ``init.httpparse``. The only exception
that leaves ``open_url`` and ``body`` is ``httpparse.HttpError``.
"""

from __future__ import annotations

import io
import ipaddress
import math
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from init.httpparse import (
    MAX_LINE,
    HttpError,
    bad,
    body_framing,
    body_pieces,
    read_head,
    shown_bytes,
)
from init.netrootcfg import Url, resolve_reference
from mosnet.base.errors import ParamError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
TRANSIENT_STATUS = (408, 425, 429, 500, 502, 503, 504)


class Conn(Protocol):
    """What httpget needs of a connected socket (a fake in unit tests)."""

    def settimeout(self, value: float | None, /) -> None: ...
    def sendall(self, data: bytes, /) -> None: ...
    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, /) -> int: ...
    def close(self) -> None: ...


Connect = Callable[[tuple[str, int], float], Conn]
Clock = Callable[[], float]


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
            raise bad(f"{stage}: the download took longer than allowed")
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
                raise bad(f"{self.stage}: the download took longer than allowed") from None
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
            raise bad(f"{stage}: a line longer than {MAX_LINE} bytes")
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


def redirect_target(base: Url, location: str | None) -> Url:
    """The URL a redirect names: absolute http://, //host/… or relative to ``base``."""
    if not location:
        raise bad("redirect without a Location header")
    try:
        return resolve_reference(base, location, "Location")
    except ParamError as exc:
        raise bad(f"header {exc}") from None


def _request(url: Url) -> bytes:
    return (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.host_header}\r\n"
        "User-Agent: mosnet-init\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


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
    why = f"HTTP status {status} {shown_bytes(reason)}" if reason else f"HTTP status {status}"
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
            raise bad(f"redirect loop: {url} redirects to {got}, fetched before")
        seen.add(got)
        url = got
    raise bad(f"more than {MAX_REDIRECTS} redirects")


def body(resp: Response, deadline: float, clock: Clock = time.monotonic) -> Iterator[bytes]:
    """The body in pieces; HttpError on a stall, a short body or past ``deadline``."""
    timing = resp.stream.wire.timing
    timing.deadline, timing.clock = min(timing.deadline, deadline), clock
    for data in body_pieces(resp.stream, resp.length, resp.chunked):
        timing.timeout("body")  # buffered data does not wait, so check here too
        yield data
