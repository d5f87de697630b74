"""What sysfs says about one network interface: its MAC and its carrier."""

from __future__ import annotations

import os


def mac_bytes(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` -> 6 bytes; ValueError for anything else."""
    mac = bytes.fromhex(text.strip().replace(":", ""))
    if len(mac) != 6:
        raise ValueError(f"{text!r} is not an Ethernet MAC")
    return mac


def interface_mac(ifname: str, sysfs: str = "/sys") -> bytes:
    with open(os.path.join(sysfs, "class/net", ifname, "address"), encoding="ascii") as fh:
        text = fh.read()
    try:
        return mac_bytes(text)
    except ValueError:
        raise OSError(f"{ifname}: not an Ethernet interface") from None


def carrier(ifname: str, sysfs: str = "/sys") -> bool | None:
    """True/False from sysfs; None if there is no such interface."""
    try:
        with open(os.path.join(sysfs, "class/net", ifname, "carrier"), encoding="ascii") as fh:
            return fh.read().strip() == "1"
    except FileNotFoundError:
        return None
    except OSError:
        return False  # EINVAL: the interface is administratively down
