"""OpenFlow over br-mosnet's unix socket: handshake, the controller loop, one-shot installs.

ovs-vswitchd listens on ``punix:<run_dir>/br-mosnet.controller`` (never
TCP); we connect as a controller. ``install`` is what PID 1 uses to put the
base flows in before anything else runs; ``serve`` is the daemon's proxy
process, which runs until the connection breaks (its supervisor starts a new
one, and the new one restores the table).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Sequence

from mosnet.base import log
from mosnet.base.wake import wait_readable
from mosnet.ovs import openflow as of
from mosnet.ovs.ofcontrol import Controller

_log = log.get("ofsock")
OFPT_BARRIER_REPLY = 21
CONNECT_TIMEOUT = 5.0


class Connection:
    def __init__(self, path: str, timeout: float = CONNECT_TIMEOUT) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buf = bytearray()
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, msgs: Sequence[bytes]) -> None:
        if msgs:
            self.sock.sendall(b"".join(msgs))

    def receive(self, timeout: float | None, wake: Sequence[int] = ()) -> list[bytes]:
        """Whatever complete messages arrive within ``timeout`` (None: no limit; maybe
        none), or none as soon as a ``wake`` fd is readable."""
        limit = None if timeout is None else max(0.0, timeout)
        if self.sock.fileno() not in wait_readable([self.sock.fileno(), *wake], limit):
            return []
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the switch closed the OpenFlow connection")
        self.buf += data
        return of.split_messages(self.buf)

    def handshake(self, timeout: float = CONNECT_TIMEOUT) -> list[bytes]:
        """Hello both ways (OpenFlow 1.3); returns messages that came after it."""
        self.send([of.hello(0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.receive(deadline - time.monotonic())
            for i, msg in enumerate(msgs):
                hello = of.decode(msg)
                if isinstance(hello, of.HelloMsg):
                    if of.OFP_VERSION not in hello.versions:
                        raise of.OfError(f"switch does not speak OpenFlow 1.3: {hello}")
                    return msgs[i + 1 :]
        raise TimeoutError("no OpenFlow hello from the switch")


def install(path: str, msgs: Sequence[bytes], timeout: float = CONNECT_TIMEOUT) -> None:
    """Send ``msgs`` and wait for a barrier; raises OfError if the switch refused any."""
    conn = Connection(path, timeout)
    try:
        conn.handshake(timeout)
        barrier_xid = 0xB0A7
        conn.send([*msgs, of.barrier_request(barrier_xid)])
        errors: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in conn.receive(deadline - time.monotonic()):
                decoded = of.decode(msg)
                if isinstance(decoded, of.ErrorMsg):
                    errors.append(f"type {decoded.type} code {decoded.code}")
                elif isinstance(decoded, of.Header) and decoded.type == OFPT_BARRIER_REPLY:
                    if errors:
                        raise of.OfError(f"switch refused flows: {', '.join(errors)}")
                    return
        raise TimeoutError("no barrier reply from the switch")
    finally:
        conn.close()


def serve(
    path: str,
    controller: Controller,
    should_stop: Callable[[], bool],
    *,
    wake_fd: int | None = None,
    poll_interval: float | None = None,
) -> None:
    """Run ``controller`` on the switch at ``path`` until ``should_stop()``.

    Sleeps until the switch sends something or ``wake_fd`` turns readable;
    ``poll_interval`` bounds the sleep for callers without a wake fd. The
    controller has no timers: the switch idles out address flows and tells
    us (flow-removed), and sends echo requests we answer on arrival.
    Raises OSError/OfError when the connection fails or breaks.
    """
    conn = Connection(path)
    wake = () if wake_fd is None else (wake_fd,)
    try:
        pending = conn.handshake()
        conn.send(controller.connected())
        _log.info("OpenFlow controller connected to %s", path)
        while not should_stop():
            for msg in pending:
                conn.send(controller.handle(msg))
            pending = conn.receive(poll_interval, wake)
    finally:
        conn.close()
