"""The link parameters' share of the hostile command lines (tests/unit/helpers/hostile_cmdline).

``KINDS`` make one valid occurrence each with a check of its effect;
``HOSTILE`` holds values their parsers refuse as a whole.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from init.cmdsetup import BootInput
from mosnet.config.model import BondSpec, VlanSpec

Check = Callable[[BootInput, int], bool]

HOSTILE: dict[str, tuple[str, ...]] = {
    "bond": (
        "bond0:eth0,eth1:mode=lacp",
        "bond0:eth0,eth1:miimon=²",
        "bond0:eth0,eth0",
        "bond0:eth0:mode=１",
        "bond0:eth0,eth1:miimon=0000000000100000",
    ),  # fmt: skip
    "vlan": ("eth0.²:eth0", "vlan0:eth0", "vlan4095:eth0", "eth0.5", "vlan٣:eth0"),
    "rd.neednet": ("２", "maybe"),
    "rd.peerdns": ("ｎｏ", "00"),
    "rd.bootif": ("nein",),
}


def _bond(r: random.Random) -> tuple[str, Check]:
    mode, miimon = r.choice(["active-backup", "balance-xor", "802.3ad"]), r.randrange(0, 60001)
    rate = "fast" if mode == "802.3ad" else "slow"
    spec = BondSpec("bond7", ("eno1", "eno2"), mode, miimon, lacp_rate=rate)
    text = f"bond=bond7:eno1,eno2:mode={mode},miimon={miimon},lacp_rate={rate}"
    return text, lambda i, _: i.net.bonds == (spec,)


def _vlan(r: random.Random) -> tuple[str, Check]:
    vid = r.randrange(1, 4095)
    spec = VlanSpec(f"bond7.{vid}", "bond7", vid)
    return f"vlan=bond7.{vid}:bond7", lambda i, _: i.net.vlans == (spec,)


def _yes_no(key: str, field: str) -> Callable[[random.Random], tuple[str, Check]]:
    def make(r: random.Random) -> tuple[str, Check]:
        value = r.random() < 0.5
        word = r.choice(["1", "yes", "on"] if value else ["0", "no", "off"])
        return f"{key}={word}", lambda i, _: getattr(i.net, field) is value

    return make


KINDS: tuple[Callable[[random.Random], tuple[str, Check]], ...] = (
    _bond, _vlan, _yes_no("rd.neednet", "network"), _yes_no("rd.peerdns", "peerdns"),
    _yes_no("rd.bootif", "use_bootif"),
)  # fmt: skip
