"""Classic BPF socket filters: instructions, programs, attaching one to a socket.

A program is the bytes of a ``struct sock_filter`` array, 8 bytes per
instruction in host byte order, as SO_ATTACH_FILTER takes it. Each socket's
program stays with its user (what to keep is that user's business); this
module only encodes instructions and hands programs to the kernel, which
checks them (jumps in range, a final return) when they are attached.

``stmt`` and ``jump`` are the kernel's ``BPF_STMT`` and ``BPF_JUMP``: jump
offsets count instructions after the jump itself. Loads read the packet
big-endian, whatever the host's byte order.
"""

from __future__ import annotations

import ctypes
import socket
import struct

# Opcodes, named after their bpf_asm mnemonics; only those mosnet's filters use.
LD = 0x20  # ld [k]: the 32-bit word at offset k
LDH = 0x28  # ldh [k]: the 16-bit half-word at offset k
LDB = 0x30  # ldb [k]: the byte at offset k
LDH_X = 0x48  # ldh [x + k]
LDX_IP_HEADER = 0xB1  # ldxb 4*([k]&0xf): x = length of the IPv4 header at k
AND = 0x54  # and #k
JEQ = 0x15  # jeq #k: to jt if a == k, else to jf
JSET = 0x45  # jset #k: to jt if a & k, else to jf
RET = 0x06  # ret #k: keep k bytes of the packet (0: drop it)

KEEP_ALL = 0x40000  # as tcpdump: more than any frame we read
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS

_INSTRUCTION = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k
_FPROG = struct.Struct("HL")  # struct sock_fprog: length, pointer to the instructions


def stmt(code: int, k: int = 0) -> bytes:
    """One instruction that does not jump."""
    return _INSTRUCTION.pack(code, 0, 0, k)


def jump(code: int, k: int, jt: int, jf: int) -> bytes:
    """One conditional jump: ``jt`` or ``jf`` instructions forward."""
    return _INSTRUCTION.pack(code, jt, jf, k)


ACCEPT = stmt(RET, KEEP_ALL)
DROP = stmt(RET, 0)


def program(*instructions: bytes) -> bytes:
    """The instructions as one program, ready for ``attach``."""
    return b"".join(instructions)


def _check(prog: bytes) -> None:
    count, rest = divmod(len(prog), _INSTRUCTION.size)
    if rest or not 0 < count <= MAX_INSTRUCTIONS:
        raise ValueError(f"BPF: {len(prog)} bytes is not 1 to {MAX_INSTRUCTIONS} instructions")


def attach(sock: socket.socket, prog: bytes) -> None:
    """Filter what ``sock`` receives through ``prog``; OSError if the kernel refuses it."""
    _check(prog)
    buf = ctypes.create_string_buffer(prog)  # the kernel copies it during the call
    fprog = _FPROG.pack(len(prog) // _INSTRUCTION.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def detach(sock: socket.socket) -> None:
    """Remove ``sock``'s filter; OSError (ENOENT) if it has none."""
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
