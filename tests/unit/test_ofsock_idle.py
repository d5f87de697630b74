"""ofsock.serve sleeps on the OpenFlow connection and the stop fd (issue 7, idle CPU).

A stand-in switch on a unix socket: hello, then silence. The controller
thread must not wake while nothing arrives (its voluntary context switches
over 1 s; the old 0.25 s poll made 4), must still answer an echo request,
and must return as soon as the Waker is set.
"""

from __future__ import annotations

import pathlib
import socket
import threading
import time
from ipaddress import IPv4Address

from mosnet.base.wake import Waker
from mosnet.ovs import ofcontrol, ofsock
from mosnet.ovs import openflow as of
from mosnet.proxy.answers import ProxyConfig

OFPT_ECHO_REPLY, OFPT_BARRIER_REQUEST = 3, 20
CFG = ProxyConfig(
    bytes.fromhex("02aa00000001"),
    frozenset({IPv4Address("10.77.0.2")}),
    frozenset(),
    frozenset({IPv4Address("10.77.0.1")}),
)


def _read_until(conn: socket.socket, buf: bytearray, kind: int) -> bytes:
    conn.settimeout(5.0)
    while True:
        for msg in of.split_messages(buf):
            if of.parse_header(msg).type == kind:
                return msg
        data = conn.recv(65536)
        assert data, "the controller hung up"
        buf += data


def _wakeups(tid: int) -> int:
    status = pathlib.Path(f"/proc/self/task/{tid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def test_serve_sleeps_answers_echo_and_stops_on_the_waker(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "br.controller")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    stop = Waker()
    controller = ofcontrol.Controller(CFG, time.monotonic)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ofsock.serve(path, controller, stop.is_set, wake_fd=stop.fileno())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    conn, _ = server.accept()
    buf = bytearray()
    try:
        conn.sendall(of.hello(1))
        _read_until(conn, buf, OFPT_BARRIER_REQUEST)  # the end of connected()
        time.sleep(0.3)
        assert thread.native_id is not None
        before = _wakeups(thread.native_id)
        time.sleep(1.0)
        assert _wakeups(thread.native_id) - before <= 1
        conn.sendall(of.echo_request(77, b"ping"))
        echo = _read_until(conn, buf, OFPT_ECHO_REPLY)
        assert of.parse_header(echo).xid == 77 and echo[8:] == b"ping"
        t0 = time.monotonic()
        stop.set()
        thread.join(2.0)
        assert not thread.is_alive() and time.monotonic() - t0 < 0.5 and not errors, errors
    finally:
        stop.set()
        thread.join(2.0)
        conn.close()
        server.close()
        stop.close()
