"""A minimal QMP client: one command per connection over QEMU's unix socket.

The guest gets ``-qmp unix:<path>,server=on,wait=off`` (:func:`qmp_args`);
:func:`command` connects, negotiates capabilities, runs one command and
returns its ``return`` value (asynchronous events on the way are skipped).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


class QmpError(Exception):
    """QEMU answered with an error, or the socket never came up."""


def qmp_args(path: Path) -> tuple[str, ...]:
    return ("-qmp", f"unix:{path},server=on,wait=off")


def _reply(reader: Any) -> dict[str, Any]:
    """The next line that is not an event."""
    while True:
        line = reader.readline()
        if not line:
            raise QmpError("QMP socket closed")
        msg: dict[str, Any] = json.loads(line)
        if "event" not in msg:
            return msg


def command(path: Path, execute: str, timeout: float = 20, **arguments: Any) -> Any:
    deadline = time.monotonic() + timeout
    while not path.exists():  # QEMU creates it shortly after start
        if time.monotonic() > deadline:
            raise QmpError(f"{path}: no QMP socket")
        time.sleep(0.1)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        reader = sock.makefile("r")
        _reply(reader)  # greeting
        for name, args in (("qmp_capabilities", {}), (execute, arguments)):
            sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
            msg = _reply(reader)
            if "error" in msg:
                raise QmpError(f"{name}: {msg['error']}")
        return msg.get("return")


def set_link(path: Path, netdev: str, up: bool) -> None:
    """Cut (or restore) a link as a pulled cable: the guest's NIC loses carrier."""
    command(path, "set_link", name=netdev, up=up)
