"""Valid HTTP replies with a known body, redirect chains, and mutations of both.

The material of bench/fuzz/httpget.py and tests/unit/test_netroot_http_fuzz.py:
``chain`` spells one fetch the way varied real servers do (framing, casing,
obs-fold, interim responses, every Location form) and says what the client
must make of it; ``mutate`` and ``mutate_text`` break replies and URLs in the
ways that crashed or could crash a parser.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from init.httpget import MAX_REDIRECTS, REDIRECTS
from init.netrootcfg import Url, parse_url

HOSTS = ("10.0.0.1", "10.0.0.2", "fd00::1", "fe80::1%eth0", "mirror-1.example", "H.EXAMPLE")
PORTS = (80, 80, 80, 8080, 1, 65535)
DIRS = ("/", "/img/", "/a/b/c/")
REASONS = (b"OK", b"", b"Ok then", b"\xc3\xa9t\xc3\xa9", b"\x80\xff", b"tab\there", b"200 OK")
JUNK_NAMES = (b"Server", b"date", b"ETAG", b"X-Junk", b"Content-Type", b"Connection",
              b"Set-Cookie", b"Link", b"accept-ranges", b"Cache-Control")  # fmt: skip
JUNK_VALUES = (b"mosnet-test/1.0", b"", b"\x80\xfe\xff", b"a:b:c", b"nul\x00inside",
               b"del\x7f", b"close", b'W/"x y"', b"  padded \t", b"\xc2\xb2")  # fmt: skip
NUMBERS = (b"\xb2", "²".encode(), "٣".encode(), "３".encode(), b"-1", b"+5", b" 5", b"5 ",
           b"0x10", b"1_0", b"1e3", b"99999999999999999999", b"0000065536", b"65536", b"0",
           b"", b"5, 6", b"5,5", b"18446744073709551616", b"\x00", b"fffffffffffff",
           b"1" * 30, b"00000000000000000000007")  # fmt: skip
LINES = (b"Content-Length: \xb2", b"Content-Length: -1", b"Content-Length: 1, 2",
         b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked",
         b"Transfer-Encoding: identity", b"Location: http://h:0000065536/x",
         b"Location: http://h:\xb2/x", b"Location: https://h/x", b" folded", b"\tfolded",
         b": novalue", b"X\x00Y: z", b"Bad Name: v", b"Location: //[fe80::1%25\xff]/x",
         b"Location: \xc3\xa9", b"Location: ../../../../x", b"Location: http://u:p@h/x",
         b"Location:", b"Content-Length: 0", b"HTTP/1.1 200 OK", b"HTTP/1.1 302 Found",
         b"HTTP/1.1 100 Continue", b"", b"0", b"5;ext", b"x" * 9000)  # fmt: skip
STATUSES = (b"200", b"301", b"302", b"303", b"307", b"308", b"100", b"101", b"103", b"199",
            b"204", b"404", b"500", b"503", b"999", b"099", "２００".encode(), b"20",
            b"2000", b"2\xb200")  # fmt: skip
LOCATIONS = (b"http://10.0.0.1/root-0.squashfs", b"http://h:0000065536/x", b"http://h:0/x",
             b"http://[::1]:65536/x", b"//h:\xd9\xa3/x", b"http://[fe80::1%\xff]/x",
             b"http://[zz::1]/", b"http://h", b"HTTPS://h/x", b"ftp://h/x", b"#", b"?",
             b"../..", b"/" + b"a/" * 1100, b"http://h/\xc3\xa9", b"http://h:80:80/x",
             b"http://[fd00::1]x/", b"http://h/x y", b"mailto:x@y", b"\\\\h\\x")  # fmt: skip
TEXT_BITS = ("\udc80", "\udcff", "²", "٣", "\x00", " ", "@", "[", "]", "%", ":", "#", "?",
             "/", "..", "0000065536", ":65536", ":0", ":²", "é", "\n", "[fe80::1%eth0]",
             "%25", "https", "//", "\u202e", "\U0001f600")  # fmt: skip
URL_SEEDS = ("http://10.0.0.1/root.squashfs", "http://[fd00::1]:8080/a/b/root.sqfs?x=1",
             "http://host.example:81/r.tar.zst#frag", "HTTP://h/x/../y.squashfs",
             "http://[fe80::1%eth0]/r.squashfs", "http://h:0000080/r.squashfs",
             "http://h:65535/", "https://h/r.squashfs")  # fmt: skip
REF_SEEDS = ("/a/b.squashfs", "b.squashfs", "../c/d.squashfs", "./x", "?q=1", "#f",
             "//h2:8080/x", "http://h3/y", "https://h/y", "../../../../x", "a:b", "",
             "/%2e%2e/x")  # fmt: skip
_NUM_RE = re.compile(rb"[0-9A-Fa-f]+")
_LOCATION_RE = re.compile(rb"(?im)^location:[ \t]*([^\r\n]*)")
_STATUS_RE = re.compile(rb"HTTP/1\.[0-9] ([^ \r\n]*)")
_CRLF_RE = re.compile(rb"\r\n")
WINDOW = 2048  # searched for numbers and lines, so a 100 KiB body costs no more


@dataclass(frozen=True)
class Chain:
    """One fetch as a server chain answers it, and what the client must make of it."""

    url: Url  # asked for
    replies: tuple[bytes, ...]  # one per connection
    expect: bytes | None  # the body; None: the chain must fail (too many redirects)
    final: Url  # where the body came from
    chunked: bool
    close_delimited: bool


def _path(rnd: random.Random, hop: int) -> str:
    query = f"?v={hop}" if rnd.random() < 0.2 else ""
    return f"{rnd.choice(DIRS)}root-{hop}.squashfs{query}"


def _spell(rnd: random.Random, url: Url) -> str:
    """``url`` as a user or a server might write it: scheme case, port zeros, fragment."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    zeros = "0" * rnd.choice((0, 0, 1, 4))
    port = "" if url.port == 80 and rnd.random() < 0.7 else f":{zeros}{url.port}"
    frag = "#part" if rnd.random() < 0.1 else ""
    return f"{rnd.choice(('http', 'HTTP', 'Http'))}://{host}{port}{url.path}{frag}"


def _location(rnd: random.Random, base: Url, hop: int) -> tuple[str, Url]:
    """A Location value and the URL it must resolve to, in one of six forms."""
    form = rnd.randrange(6)
    name = f"root-{hop}.squashfs"
    here = base.path.partition("?")[0]
    folder = here[: here.rfind("/") + 1]
    if form <= 1:  # absolute, or network-path (//host…)
        url = Url(rnd.choice(HOSTS), rnd.choice(PORTS), _path(rnd, hop))
        text = _spell(rnd, url)
        return (text if form == 0 else text[text.index("//") :]), url
    if form == 2:
        url = Url(base.host, base.port, _path(rnd, hop))
        return url.path, url
    if form == 3:
        return rnd.choice(("", "./")) + name, Url(base.host, base.port, folder + name)
    if form == 4:
        parent = folder[: folder[:-1].rfind("/") + 1] or "/"
        return "../" + name, Url(base.host, base.port, parent + name)
    return f"?hop={hop}", Url(base.host, base.port, f"{here}?hop={hop}")


def _head(rnd: random.Random, status: bytes, fields: list[bytes]) -> bytes:
    """Interim responses, the status line, the header lines in random order, CRLF or LF."""
    lf = b"\n" if rnd.random() < 0.1 else b"\r\n"
    out = b""
    for _ in range(rnd.choice((0, 0, 0, 0, 1, 2))):
        out += rnd.choice(
            (b"HTTP/1.1 100 Continue", b"HTTP/1.1 103 Early Hints" + lf + b"Link: </x>")
        )
        out += lf + lf
    reason = rnd.choice(REASONS)
    version = rnd.choice((b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.9"))
    out += version + b" " + status + (b" " + reason if reason or rnd.random() < 0.5 else b"") + lf
    junk = [rnd.choice(JUNK_NAMES) + b":" + rnd.choice((b" ", b"", b"\t")) + rnd.choice(JUNK_VALUES)
            for _ in range(rnd.choice((0, 1, 2, 4)))]  # fmt: skip
    if junk and rnd.random() < 0.3:  # obs-fold: a continuation of the last junk field
        junk[-1] += lf + rnd.choice((b" ", b"\t", b"  \t")) + b"more"
    lines = fields + junk
    rnd.shuffle(lines)
    return out + b"".join(line + lf for line in lines) + lf


def _length_fields(rnd: random.Random, n: int) -> list[bytes]:
    name = rnd.choice((b"Content-Length", b"content-length", b"CONTENT-LENGTH"))
    value = b"0" * rnd.choice((0, 0, 0, 2)) + str(n).encode()
    fields = [name + b":" + rnd.choice((b" ", b"", b"\t ")) + value + rnd.choice((b"", b" \t"))]
    if rnd.random() < 0.1:
        fields.append(fields[0] if rnd.random() < 0.5 else b"Content-Length: %d, %d" % (n, n))
    return fields


def _chunks(rnd: random.Random, data: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(data):
        size = min(len(data) - pos, rnd.choice((1, 3, 16, 100, 5000, 1 << 17)))
        hexa = b"%x" % size if rnd.random() < 0.7 else b"%X" % size
        ext = rnd.choice((b"", b"", b";a=b", b";name", b' ;q="x y"'))
        out += (
            b"0" * rnd.choice((0, 0, 3)) + hexa + ext + b"\r\n" + data[pos : pos + size] + b"\r\n"
        )
        pos += size
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(rnd.choice((0, 0, 1, 2))))
    return out + rnd.choice((b"0", b"000", b"0;end")) + b"\r\n" + trailers + b"\r\n"


def _ok(rnd: random.Random, data: bytes) -> tuple[bytes, str]:
    framing = rnd.choice(("length", "length", "chunked", "chunked", "close"))
    if framing == "length":
        return _head(rnd, b"200", _length_fields(rnd, len(data))) + data, framing
    if framing == "close":
        return _head(rnd, b"200", []) + data, framing
    te = rnd.choice((b"chunked", b"Chunked", b"CHUNKED", b" chunked ", b"chunked, "))
    fields = [b"Transfer-Encoding: " + te]
    if rnd.random() < 0.1:  # Transfer-Encoding wins over a Content-Length (RFC 9112 6.3)
        fields.append(b"Content-Length: 3")
    return _head(rnd, b"200", fields) + _chunks(rnd, data), framing


def _redirect(rnd: random.Random, location: str) -> bytes:
    name = rnd.choice((b"Location", b"location", b"LOCATION"))
    fields = [name + b": " + location.encode()]
    if rnd.random() < 0.1:
        fields.append(fields[0])  # the same Location twice is no conflict
    fields += rnd.choice(([], [b"Content-Length: 0"], [b"Content-Length: 5"]))
    return _head(rnd, b"%d" % rnd.choice(REDIRECTS), fields) + b"moved"


def _body(rnd: random.Random) -> bytes:
    if rnd.random() < 0.02:  # more than one CHUNK: the body comes in several pieces
        return rnd.randbytes(rnd.randrange(1 << 16, 1 << 17))
    return rnd.randbytes(rnd.choice((0, 1, 7, 64, 300, 2000)))


def chain(rnd: random.Random) -> Chain:
    """The start URL, 0..MAX_REDIRECTS+1 redirects, then the body (if reachable)."""
    start = Url(rnd.choice(HOSTS), rnd.choice(PORTS), _path(rnd, 0))
    url = parse_url(_spell(rnd, start))
    hops = rnd.choice((0, 0, 0, 1, 1, 2, 3, MAX_REDIRECTS, MAX_REDIRECTS + 1))
    replies, here = [], url
    for hop in range(1, hops + 1):
        location, here = _location(rnd, here, hop)
        replies.append(_redirect(rnd, location))
    data = _body(rnd)
    reply, framing = _ok(rnd, data)
    if hops > MAX_REDIRECTS:
        return Chain(url, tuple(replies), None, here, False, False)
    replies.append(reply)
    return Chain(url, tuple(replies), data, here, framing == "chunked", framing == "close")


def _replace(rnd: random.Random, data: bytearray, pattern: re.Pattern[bytes], new: bytes) -> None:
    """Replace group 1 (or the whole match) of one ``pattern`` match in a window."""
    at = (
        rnd.randrange(max(1, len(data) - WINDOW))
        if len(data) > WINDOW and rnd.random() < 0.5
        else 0
    )
    found = list(pattern.finditer(data, at, at + WINDOW))
    if found:
        m = rnd.choice(found)
        group = 1 if m.re.groups else 0
        data[m.start(group) : m.end(group)] = new


def _line_start(rnd: random.Random, data: bytearray) -> int:
    starts = [0] + [m.end() for m in re.finditer(rb"\n", data[:WINDOW])]
    return rnd.choice(starts)


def mutate(rnd: random.Random, reply: bytes) -> bytes:
    data = bytearray(reply)
    op = rnd.randrange(12)
    pos = rnd.randrange(len(data) + 1)
    if op == 0 and pos < len(data):
        data[pos] = rnd.randrange(256)
    elif op == 1 and pos < len(data):
        data[pos] ^= 1 << rnd.randrange(8)
    elif op == 2:
        del data[pos : pos + rnd.randint(1, 16)]
    elif op == 3:
        data[pos:pos] = rnd.randbytes(rnd.randint(1, 8))
    elif op == 4:
        del data[pos:]
    elif op == 5:
        _replace(rnd, data, _NUM_RE, rnd.choice(NUMBERS))
    elif op == 6:
        at = _line_start(rnd, data)
        data[at:at] = rnd.choice(LINES) + rnd.choice((b"\r\n", b"\n"))
    elif op == 7:  # a line twice, or gone
        at = _line_start(rnd, data)
        end = data.find(b"\n", at) + 1 or len(data)
        data[at:end] = data[at:end] * rnd.choice((0, 2))
    elif op == 8:
        _replace(rnd, data, _STATUS_RE, rnd.choice(STATUSES))
    elif op == 9:
        _replace(rnd, data, _LOCATION_RE, rnd.choice(LOCATIONS))
    elif op == 10:
        _replace(rnd, data, _CRLF_RE, rnd.choice((b"\n", b"\r", b"\r\r\n", b"\n\r")))
    else:  # a line longer than allowed, or one more header line than allowed
        at = _line_start(rnd, data)
        data[at:at] = rnd.choice((b"X: " + b"y" * 8200 + b"\r\n", b"X: y\r\n" * 100))
    return bytes(data)


def mutate_text(rnd: random.Random, text: str) -> str:
    """A URL or reference with characters inserted, replaced, dropped or cut."""
    chars = list(text)
    for _ in range(rnd.choice((0, 1, 1, 2, 3))):
        pos = rnd.randrange(len(chars) + 1)
        op = rnd.randrange(4)
        if op == 0:
            chars[pos:pos] = rnd.choice(TEXT_BITS)
        elif op == 1 and pos < len(chars):
            chars[pos] = chr(rnd.choice((rnd.randrange(128), rnd.randrange(0x80, 0x3000),
                                         rnd.randrange(0xDC80, 0xDD00))))  # fmt: skip
        elif op == 2:
            del chars[pos : pos + rnd.randint(1, 4)]
        else:
            del chars[pos:]
    return "".join(chars)
