"""Seeded mutation fuzz of the mosroot= HTTP client: whatever a server sends.

Builds valid replies with a known body (Content-Length, chunked or
close-delimited framing; interim 1xx responses; header casing, obs-fold,
repeated fields; redirect chains with absolute, ``//host``, relative,
``../`` and ``?query`` Locations), mutates some of them (bytes, lines,
status codes, numbers such as ``²``/``٣``/``0000065536``, chunk sizes,
Location values, line endings, truncation) and feeds each chain to
``httpget.open_url`` + ``httpget.body`` through in-memory connections (no
sockets, no threads). Allowed outcome: HttpError with a one-line message
whose ``transient`` fits its cause; an unmutated chain must give the body
byte-exact at the expected URL. Every wait must be bounded by the stall
timeout and the deadline; every address must be one a socket accepts.
Each case also fuzzes ``parse_url`` and ``resolve_reference`` (only
ParamError; a Url round-trips). tests/unit/test_netroot_http_fuzz.py runs
this for >=100k cases in CI; this script runs as many as you ask for.

usage: .venv/bin/python bench/fuzz/httpget.py [--cases 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # a script: import from the checkout, not its folder
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.fuzz import httpparts as parts  # noqa: E402
from init import httpget  # noqa: E402
from init.httpparse import HttpError  # noqa: E402
from init.netrootcfg import MAX_URL, Url, parse_url, resolve_reference  # noqa: E402
from mosnet.base.errors import ParamError  # noqa: E402

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

STALL = 30.0
CORPUS = 3000  # valid chains the mutations start from (building one costs as much as a fetch)
_REQUEST_RE = re.compile(rb"GET /[\x21-\x7e]* HTTP/1\.1\r\nHost: [\x21-\x7e]+\r\n")
_TRANSIENT_WORDS = ("stalled", "closed early", "missing", "receive failed", "cannot connect")
_QUOTED_RE = re.compile(r"'(?:[^'\\]|\\.)*'")
_PERMANENT_WORDS = ("malformed", "bad value", "not supported", "redirect loop", "expected hex")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Canned:
    """One connection replaying ``data`` in pieces, then closing, stalling or resetting."""

    def __init__(self, data: bytes, end: str, piece: int, world: World) -> None:
        self.data, self.end, self.piece, self.world = data, end, piece, world
        self.pos = 0
        self.timeout: float | None = None

    def settimeout(self, value: float | None, /) -> None:
        self.timeout = value

    def sendall(self, data: bytes, /) -> None:
        self.world.check_wait(self.timeout)
        if not _REQUEST_RE.match(data) or data.count(b"\r\n\r\n") != 1:
            raise AssertionError(f"malformed request {data!r}")

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, /) -> int:
        self.world.check_wait(self.timeout)
        self.world.clock.t += self.world.tick
        view = memoryview(buffer)
        if self.pos >= len(self.data):
            if self.end == "stall":
                self.world.clock.t += self.timeout or 0.0
                raise TimeoutError("timed out")
            if self.end == "reset":
                raise ConnectionResetError(104, "Connection reset by peer")
            return 0
        n = min(len(view), self.piece, len(self.data) - self.pos)
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def close(self) -> None:
        pass


@dataclass
class World:
    """The servers of one case: each connect serves the next reply."""

    replies: list[bytes]
    end: str
    piece: int
    deadline: float = math.inf
    tick: float = 0.0
    clock: Clock = field(default_factory=Clock)
    served: int = 0

    def check_wait(self, timeout: float | None) -> None:
        left = self.deadline - self.clock.t
        if timeout is None or not 0 < timeout <= min(STALL, left):
            raise AssertionError(f"a wait of {timeout} s (stall {STALL}, {left} s left)")

    def connect(self, addr: tuple[str, int], timeout: float) -> Canned:
        host, port = addr
        host.encode("ascii")  # a str host goes through idna, which the image lacks
        if not 0 <= port <= 65535:  # what socket.connect raises
            raise OverflowError("connect(): port must be 0-65535.")
        self.check_wait(timeout)
        if self.served >= len(self.replies):
            raise ConnectionRefusedError(111, "Connection refused")
        self.served += 1
        last = self.served == len(self.replies)
        return Canned(
            self.replies[self.served - 1], self.end if last else "close", self.piece, self
        )


@dataclass
class Stats:
    cases: int = 0
    exact: int = 0  # unmutated chains whose body was checked byte for byte
    bodies: int = 0  # any case that gave a body
    mutated_bodies: int = 0
    redirected: int = 0  # bodies fetched after at least one redirect
    chunked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    urls: int = 0


def _check_error(exc: HttpError) -> str:
    """One printable line; ``transient`` fits the cause. Returns the kind, for stats."""
    text = str(exc)
    if not text.isprintable():
        raise AssertionError(f"not one printable log line: {text!r}")
    bare = _QUOTED_RE.sub("''", text)  # the server's own words do not count
    cause = bare.rsplit(": ", 1)[-1] if bare.startswith("redirected to") else bare
    if any(w in cause for w in _TRANSIENT_WORDS) and not exc.transient:
        raise AssertionError(f"should be transient: {text}")
    if any(w in cause for w in _PERMANENT_WORDS) and exc.transient:
        raise AssertionError(f"should not be transient: {text}")
    return re.sub(r"[0-9]+|redirected to \S+ ", "", bare)[:60]


def fetch(world: World, url: Url) -> tuple[Url, bytes]:
    clock = world.clock
    resp = httpget.open_url(
        url, connect=world.connect, stall=STALL, deadline=world.deadline, clock=clock
    )
    try:
        return resp.url, b"".join(httpget.body(resp, world.deadline, clock))
    finally:
        resp.close()


def run_case(rnd: random.Random, stats: Stats, corpus: list[parts.Chain]) -> None:
    """A fresh valid chain checked byte for byte, or a mutated one from ``corpus``."""
    mutated = rnd.random() < 0.7
    chain = rnd.choice(corpus) if mutated else parts.chain(rnd)
    replies = list(chain.replies)
    if mutated:
        for _ in range(rnd.choice((1, 1, 1, 2, 2, 3, 5))):
            i = rnd.randrange(len(replies))
            replies[i] = parts.mutate(rnd, replies[i])
    end = rnd.choice(("close", "close", "stall", "reset"))
    piece = 1 << 20  # all at once, or split: at most ~64 receives, so the fuzz stays fast
    if rnd.random() < 0.25:
        piece = max(rnd.choice((1, 2, 5, 17, 300)), max(map(len, replies)) // 64 + 1)
    world = World(replies, end, piece)
    if rnd.random() < 0.1:  # a clock that runs: the deadline must win
        world.tick, world.deadline = rnd.choice((0.5, 3.0, 40.0)), rnd.uniform(0, 60)
    try:
        final, data = fetch(world, chain.url)
    except HttpError as exc:
        kind = _check_error(exc)
        stats.errors[kind] = stats.errors.get(kind, 0) + 1
        if not mutated and world.tick == 0 and chain.expect is not None:
            if not (chain.close_delimited and end != "close"):
                raise AssertionError(f"a valid chain failed: {exc}\n{chain.replies!r}") from None
        return
    stats.bodies += 1
    stats.mutated_bodies += mutated
    stats.redirected += final != chain.url
    stats.chunked += chain.chunked and not mutated
    if len(data) > sum(map(len, replies)):
        raise AssertionError("a body longer than everything the server sent")
    if not mutated:
        if chain.expect is None or chain.close_delimited and end != "close":
            raise AssertionError(f"an invalid chain gave a body: {chain.replies!r}")
        if data != chain.expect or final != chain.final:
            raise AssertionError(f"wrong body or URL {final} for {chain.replies!r}")
        stats.exact += 1


def check_url(rnd: random.Random, stats: Stats) -> None:
    """parse_url and resolve_reference on mutated text: a Url that round-trips, or ParamError."""
    text = parts.mutate_text(rnd, rnd.choice(parts.URL_SEEDS))
    try:
        url = parse_url(text)
    except ParamError as exc:
        if not str(exc).isprintable():
            raise AssertionError(f"not one printable log line: {str(exc)!r}") from None
    else:
        _check_url(url)
        if parse_url(str(url)) != url:
            raise AssertionError(f"{text!r} -> {url} does not round-trip")
        stats.urls += 1
    base = parse_url(rnd.choice(parts.URL_SEEDS[:4]))
    ref = parts.mutate_text(rnd, rnd.choice(parts.REF_SEEDS))
    try:
        _check_url(resolve_reference(base, ref))
    except ParamError:
        pass


def _check_url(url: Url) -> None:
    if not 0 < url.port < 65536 or not url.path.startswith("/") or len(url.path) > MAX_URL:
        raise AssertionError(f"bad Url {url!r}")
    if not (url.host + url.path).isascii() or not str(url).isprintable() or " " in str(url):
        raise AssertionError(f"not printable ASCII: {url!r}")


def run(cases: int, seed: int = 1) -> Stats:
    """``cases`` fetches (and as many URL checks); raise on anything but the allowed errors."""
    rnd = random.Random(seed)
    corpus = [parts.chain(rnd) for _ in range(CORPUS)]
    stats = Stats()
    for _ in range(cases):
        run_case(rnd, stats, corpus)
        check_url(rnd, stats)
        stats.cases += 1
    return stats


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    start = time.monotonic()
    stats = run(args.cases, args.seed)
    took = time.monotonic() - start
    top = sorted(stats.errors.items(), key=lambda kv: -kv[1])[:12]
    print(
        f"{stats.cases} cases in {took:.1f} s = {stats.cases / took:,.0f} cases/s "
        f"(exact {stats.exact}, bodies {stats.bodies}, after mutation {stats.mutated_bodies}, "
        f"redirected {stats.redirected}, chunked {stats.chunked}, urls ok {stats.urls})"
    )
    for kind, n in top:
        print(f"  {n:8d}  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
