"""No TCP listener on an OpenFlow or OVSDB port: mosnet's switch talks over unix sockets only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

OPENFLOW_PORTS = (6633, 6653, 6640)  # OpenFlow (old and IANA) and OVSDB


def _hex_addr(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:  # /proc/net/tcp: one little-endian 32-bit word
        return ".".join(str(b) for b in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # four LE words
    return bytes(b for w in words for b in w).hex(":", 2)


def tcp_listeners(ports: Sequence[int] = OPENFLOW_PORTS, proc: str = "/proc") -> list[str]:
    """``addr:port`` of every TCP listener on ``ports`` in this netns."""
    found = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"{proc}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: TCP_LISTEN
                continue
            addr, _, port = fields[1].partition(":")
            if int(port, 16) in ports:
                found.append(f"{_hex_addr(addr)}:{int(port, 16)}")
    return found


def listeners_ok(proc: str = "/proc") -> bool:
    """True when nothing listens on an OpenFlow/OVSDB TCP port (unix sockets only)."""
    return not tcp_listeners(OPENFLOW_PORTS, proc)
