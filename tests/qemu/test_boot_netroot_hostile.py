"""mosroot= against a hostile HTTP server, booted: one declared line, then the fallback.

The server in the gateway namespace answers ``/root.squashfs`` with a
relative redirect and ``/next.squashfs`` with ``Content-Length: \\xb2``: a
byte that ``str.isdigit()`` accepts after latin-1 decoding, which made the
old parser raise ValueError. The boot must say what went wrong in one line,
``mosroot=<url>: redirected to <url>: header Content-Length: bad value
'\\xb2', expected …``, retry as any failed boot does, and end in the fallback
with no traceback and no panic.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qemu.topology import Gateway
from qemu.vm import Vm
from tests.qemu.conftest import BOOT_TIMEOUT
from tests.qemu.test_boot_netroot import _spawn, _spec, _wait_listen

PORT = 8002

HOSTILE_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
while True:
    c, _ = s.accept(); req = c.recv(65536)
    if req.startswith(b"GET /root.squashfs "):
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: next.squashfs\r\nContent-Length: 0\r\n\r\n")
    else:
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n")
    c.close()
"""


def test_hostile_content_length_is_one_line_then_fallback(gateway: Gateway, tmp_path: Path) -> None:
    _spawn(gateway, [sys.executable, "-c", HOSTILE_SERVER, gateway.address, str(PORT)],
           tmp_path / "hostile.log")  # fmt: skip
    _wait_listen(gateway, PORT)
    url = f"http://{gateway.address}:{PORT}/root.squashfs"
    with Vm(_spec(gateway, f"mosroot={url} mosroot_sha256={'1' * 64}"), tmp_path / "c.log") as vm:
        vm.wait_for(r"reboot: System halted", BOOT_TIMEOUT)
        console = vm.text()
    cause = (
        f"redirected to http://{gateway.address}:{PORT}/next.squashfs: header Content-Length: "
        r"bad value '\xb2', expected a decimal number of bytes"
    )
    assert f"mosroot={url}: {cause}" in console
    assert "boot attempt 1/3 failed (NetRootError: " in console
    assert "FATAL: NetRootError" in console
    assert "Traceback" not in console and "Kernel panic" not in console
