"""A canned-reply HTTP server on socketpairs for the init.httpget tests, and ``fetch``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from init import httpget
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
