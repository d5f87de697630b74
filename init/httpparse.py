"""HTTP/1.1 response parsing: status line, headers, body framing, chunked decoding.

Everything the server sends is untrusted input, parsed strictly: the status
line (``HTTP/1.x``, three ASCII digits; interim 1xx responses are skipped),
header lines (RFC 9110 tokens as names, obs-fold continuations unfolded,
duplicates combined as a list, two Locations must agree), Content-Length
(ASCII digits, all copies equal), Transfer-Encoding (``chunked`` only),
chunk-size lines and trailers. A failure is an ``HttpError`` naming the stage
or header and what was expected, quoting the server's bytes with ``shown``.
Bounds: at most ``MAX_HEADER_LINES`` lines of ``MAX_LINE`` bytes per head,
``MAX_INTERIM`` interim responses, the body in pieces of at most ``CHUNK``
bytes. Reading comes from a ``Source`` (``init.httpget.Stream`` on a socket);
nothing here opens a connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

from mosnet.base.errors import MosnetError, shown

MAX_LINE = 8192
MAX_HEADER_LINES = 100
MAX_INTERIM = 5  # 1xx responses (100 Continue, 103 Early Hints) before the final one
MAX_LENGTH = 1 << 44  # 16 TiB: a bigger Content-Length is nonsense, not a size
CHUNK = 1 << 16

_VERSION_RE = re.compile(rb"HTTP/1\.[0-9]")
_CODE_RE = re.compile(rb"[1-5][0-9][0-9]")
_TOKEN_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2
_CHUNK_SIZE_RE = re.compile(rb"0*([0-9A-Fa-f]{1,12})[ \t]*(;.*)?", re.DOTALL)
_DECIMAL_RE = re.compile(r"0*([0-9]{1,15})")  # a str pattern: [0-9] is ASCII only


class Source(Protocol):
    """Where a response is read from; each read names its stage for errors."""

    def line(self, stage: str) -> bytes:
        """One line without its line end; HttpError past MAX_LINE or at the end."""
        ...

    def piece(self, stage: str, size: int) -> bytes:
        """Up to ``size`` bytes, b"" at the end of the stream."""
        ...


class HttpError(MosnetError):
    """The fetch failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def bad(message: str) -> HttpError:
    """The server sent something malformed: asking again will not fix it."""
    return HttpError(message, transient=False)


def shown_bytes(data: bytes) -> str:
    """Server bytes for an error message: non-ASCII bytes as \\xNN, bounded."""
    return shown(data.decode("ascii", "surrogateescape"), 80)


def parse_status(line: bytes) -> tuple[int, bytes]:
    """``HTTP/1.1 200 OK`` -> (200, b"OK"); the reason phrase may be anything."""
    version, _, rest = line.partition(b" ")
    if not _VERSION_RE.fullmatch(version):
        raise bad(
            f"status line {shown_bytes(line)}: not HTTP/1.x, expected HTTP/1.1 <code> <reason>"
        )
    code, _, reason = rest.partition(b" ")
    if not _CODE_RE.fullmatch(code):
        raise bad(f"status line {shown_bytes(line)}: bad status code, expected 3 digits 100..599")
    return int(code), reason


def read_headers(stream: Source, stage: str = "headers") -> dict[str, str]:
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
                raise bad(f"{stage}: continuation line {shown_bytes(line)} before any header")
            name, value = fields.pop()
            fields.append((name, (value + b" " + line.strip(b" \t")).strip(b" ")))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN_RE.fullmatch(name):
            raise bad(
                f"{stage}: malformed header line {shown_bytes(line)}, expected <name>: <value>"
            )
        fields.append((name.lower(), value.strip(b" \t")))
    raise bad(f"{stage}: more than {MAX_HEADER_LINES} header lines")


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
            raise bad(
                f"{stage}: conflicting Location headers {shown(headers[name])}, {shown(value)}"
            )
    return headers


def content_length(value: str) -> int:
    """``Content-Length``: ASCII digits; copies (``42, 042``) must agree."""
    items = [item.strip(" \t") for item in value.split(",")]
    matches = [_DECIMAL_RE.fullmatch(item) for item in items if item]
    if not matches or None in matches:
        expected = f"a decimal number of bytes up to {MAX_LENGTH}"
        raise bad(f"header Content-Length: bad value {shown(value)}, expected {expected}")
    lengths = {int(m[1]) for m in matches if m}
    if len(lengths) > 1:
        raise bad(f"header Content-Length: conflicting values {shown(value)}")
    length = lengths.pop()
    if length > MAX_LENGTH:
        raise bad(f"header Content-Length: {length} bytes, more than {MAX_LENGTH} is no size")
    return length


def body_framing(headers: dict[str, str]) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?); Transfer-Encoding wins (RFC 9112 6.3)."""
    te = headers.get("transfer-encoding")
    if te is not None:
        codings = [c.strip(" \t").lower() for c in te.split(",") if c.strip(" \t")]
        if codings != ["chunked"]:
            raise bad(f"header Transfer-Encoding: {shown(te)} is not supported, expected chunked")
        return None, True
    cl = headers.get("content-length")
    return (None if cl is None else content_length(cl)), False


def chunk_size(line: bytes) -> int:
    """``1a2b[;ext]`` -> 0x1a2b; leading zeros are fine, extensions ignored."""
    match = _CHUNK_SIZE_RE.fullmatch(line)
    size = int(match[1], 16) if match else -1
    if not 0 <= size <= MAX_LENGTH:
        expected = f"hex digits up to {MAX_LENGTH:x}, then ;extensions"
        raise bad(f"chunk size line {shown_bytes(line)}: expected {expected}")
    return size


def read_head(stream: Source) -> tuple[int, bytes, dict[str, str]]:
    """Status and headers of the final response, interim 1xx ones skipped."""
    for _ in range(MAX_INTERIM + 1):
        status, reason = parse_status(stream.line("status line"))
        headers = read_headers(stream)
        if status >= 200 or status == 101:
            return status, reason, headers
    raise bad(f"status line: more than {MAX_INTERIM} interim 1xx responses")


def _exactly(stream: Source, size: int, stage: str) -> Iterator[bytes]:
    while size > 0:
        data = stream.piece(stage, min(size, CHUNK))
        if not data:
            why = f"{stage}: connection closed with {size} bytes of the body missing"
            raise HttpError(why, transient=True)
        size -= len(data)
        yield data


def _chunked(stream: Source) -> Iterator[bytes]:
    while True:
        size = chunk_size(stream.line("chunk size line"))
        if size == 0:
            read_headers(stream, "trailers")  # up to the final empty line
            return
        yield from _exactly(stream, size, "chunk data")
        if stream.line("chunk end"):
            raise bad("chunk end: more data than the chunk size said, expected CRLF")


def _until_close(stream: Source) -> Iterator[bytes]:
    while data := stream.piece("body", CHUNK):
        yield data


def body_pieces(stream: Source, length: int | None, chunked: bool) -> Iterator[bytes]:
    """The body as its framing says: chunked, ``length`` bytes, or up to the close."""
    if chunked:
        return _chunked(stream)
    if length is not None:
        return _exactly(stream, length, "body")
    return _until_close(stream)
