"""Capture the frames an interface in a netns receives, while a block runs.

``with capture(ns, ifname) as frames: ...`` fills ``frames`` (bytes) when the
block ends. Used to prove that no internal MAC is anywhere in what reaches
the provider: Ethernet header, ARP body, NDP options.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

SCRIPT = textwrap.dedent("""
    import json, select, socket, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((sys.argv[1], 0))
    print("ready", flush=True)
    frames = []
    while True:  # until the test closes stdin
        r, _, _ = select.select([s, sys.stdin], [], [], 60)
        if not r or sys.stdin in r:
            break
        data, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:  # only what the other side sent
            frames.append(data.hex())
    print(json.dumps(frames), flush=True)
""")


@contextlib.contextmanager
def capture(ns: str, ifname: str, python: str = sys.executable) -> Iterator[list[bytes]]:
    frames: list[bytes] = []
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, python, "-c", SCRIPT, ifname],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield frames
        out, _ = proc.communicate(input="", timeout=20)
        frames += [bytes.fromhex(h) for h in json.loads(out)]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def leaks(frames: list[bytes], mac: str) -> list[str]:
    """Frames that carry ``mac`` anywhere (hex, for the assertion message)."""
    raw = bytes.fromhex(mac.replace(":", ""))
    return [f.hex() for f in frames if raw in f]
