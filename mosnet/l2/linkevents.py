"""Which links under an uplink changed, and which slave each bond uses now.

A bond fails over a few miimon periods after its active slave lost the
carrier; the kernel reports the carrier change, the slaves' new states and
the bridge's promiscuity moving as ``RTM_NEWLINK`` on the links involved. A
watcher wakes on those (``indexes``) and then reads each bond's
``active_slave`` from sysfs, which is the one fact that matters and does not
depend on which notifications a kernel version sends.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from mosnet.l2.linkwatch import RTM_DELLINK, RTM_NEWLINK

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")


def stack_below(ifname: str, sysfs: str = "/sys") -> list[str]:
    """``ifname`` and every link under it (a VLAN's bond, the bond's slaves)."""
    out, todo = [], [ifname]
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        out.append(name)
        try:
            entries = os.listdir(os.path.join(sysfs, "class/net", name))
        except OSError:
            continue
        todo += [e.removeprefix("lower_") for e in sorted(entries) if e.startswith("lower_")]
    return out


def bonds_below(ifname: str, sysfs: str = "/sys") -> list[str]:
    """The bonds in the stack under ``ifname`` (itself included)."""
    return [
        n for n in stack_below(ifname, sysfs)
        if os.path.isdir(os.path.join(sysfs, "class/net", n, "bonding"))
    ]  # fmt: skip


def active_slaves(bonds: Iterable[str], sysfs: str = "/sys") -> dict[str, str]:
    """bond -> its active slave ("" for none, or a mode without one such as 802.3ad)."""
    out = {}
    for bond in bonds:
        try:
            with open(os.path.join(sysfs, "class/net", bond, "bonding/active_slave")) as f:
                out[bond] = f.read().strip()
        except OSError:
            out[bond] = ""
    return out


def indexes(data: bytes) -> list[int]:
    """The ifindex of every link message in ``data`` (one recv), in order."""
    found, offset = [], 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            found.append(_IFINFOMSG.unpack_from(data, offset + _NLMSGHDR.size)[2])
        offset += (length + 3) & ~3
    return found
