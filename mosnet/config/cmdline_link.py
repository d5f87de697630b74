"""dracut's link parameters: ``bond=`` and ``vlan=``, each checked as a whole.

A bond or VLAN is created as one unit or not at all: a bad option, slave or
name rejects that one parameter (with the token and the expected form) and
everything else on the line still applies. The forms, as dracut documents
them:

* ``bond=<name>[:<slaves>[:<options>[:<mtu>]]]``: slaves comma-separated
  (default ``eth0,eth1``), options ``key=value`` comma-separated; bare
  ``bond`` is ``bond0`` over ``eth0,eth1``. Unlike the kernel, ``miimon``
  defaults to 100 ms: with 0 a bond never notices a dead link.
* ``vlan=<name>:<parent>``: the VLAN id comes from the name, ``vlan0005``,
  ``vlan5``, ``<parent>.0005`` or ``<parent>.5``.
"""

from __future__ import annotations

import dataclasses
import re

from mosnet.base.errors import ParamError
from mosnet.config import registry
from mosnet.config.cmdline_ip import E_IFNAME, E_MTU, ifname, number
from mosnet.config.model import BOND_MODES, XMIT_HASH_POLICIES, BondSpec, VlanSpec

E_MODE = f"a bond mode: {'|'.join(BOND_MODES)} or its number 0-6"
E_HASH = f"a transmit hash policy: {'|'.join(XMIT_HASH_POLICIES)} or 0-5"
E_MS = "milliseconds 0-60000"
E_OPTION = "mode, miimon, updelay, downdelay, lacp_rate, xmit_hash_policy or primary as key=value"
E_VLAN_NAME = "a VLAN name that holds its id 1-4094: vlan5, vlan0005, <parent>.5 or <parent>.0005"
_VLAN_NAME = re.compile(r"(?:vlan|.+\.)([0-9]{1,4})")


def bond(value: str) -> BondSpec:
    """One ``bond=`` value (``""`` for the bare flag); raises ParamError."""
    fields = value.split(":") if value else []
    if len(fields) > 4:
        raise ParamError("bond", value, registry.expected("bond"))
    fields += [""] * (4 - len(fields))
    name = ifname("bond", fields[0]) if fields[0] else "bond0"
    spec = BondSpec(name)
    if fields[1]:
        spec = dataclasses.replace(spec, slaves=_slaves(fields[1], name))
    for option in fields[2].split(",") if fields[2] else []:
        spec = _option(spec, option)
    if fields[3]:
        spec = dataclasses.replace(spec, mtu=number("bond", fields[3], 68, 65535, E_MTU))
    if spec.primary is not None and spec.primary not in spec.slaves:
        raise ParamError("bond", f"primary={spec.primary}", f"one of the slaves {spec.slaves}")
    return spec


def _slaves(text: str, bond_name: str) -> tuple[str, ...]:
    slaves = tuple(ifname("bond", s) for s in text.split(","))
    if len(set(slaves)) != len(slaves) or bond_name in slaves:
        raise ParamError("bond", text, "distinct slave names other than the bond's own")
    return slaves


def _option(spec: BondSpec, option: str) -> BondSpec:
    key, eq, val = option.partition("=")
    if not eq or not val:
        raise ParamError("bond", option, E_OPTION)
    key = key.strip().lower()
    if key == "mode":
        return dataclasses.replace(spec, mode=_word(option, val, BOND_MODES, E_MODE))
    if key == "miimon":
        return dataclasses.replace(spec, miimon=_ms(key, val))
    if key == "updelay":
        return dataclasses.replace(spec, updelay=_ms(key, val))
    if key == "downdelay":
        return dataclasses.replace(spec, downdelay=_ms(key, val))
    if key == "lacp_rate":
        rate = _word(option, val, ("slow", "fast"), "lacp_rate: slow|fast or 0|1")
        return dataclasses.replace(spec, lacp_rate=rate)
    if key == "xmit_hash_policy":
        return dataclasses.replace(
            spec, xmit_hash_policy=_word(option, val, XMIT_HASH_POLICIES, E_HASH)
        )
    if key == "primary":
        return dataclasses.replace(spec, primary=ifname("bond", val))
    raise ParamError("bond", option, E_OPTION)


def _ms(key: str, val: str) -> int:
    return number("bond", val, 0, 60000, f"{key}: {E_MS}")


def _word(option: str, val: str, words: tuple[str, ...], expected: str) -> str:
    """A name from ``words`` (any case) or its index as ASCII digits."""
    low = val.lower()
    if low in words:
        return low
    if re.fullmatch(r"[0-9]", val) and int(val) < len(words):
        return words[int(val)]
    raise ParamError("bond", option, expected)


def vlan(value: str) -> VlanSpec:
    """One ``vlan=<name>:<parent>`` value; raises ParamError."""
    name, sep, parent = value.partition(":")
    if not sep or not parent:
        raise ParamError("vlan", value, registry.expected("vlan"))
    name = ifname("vlan", name)
    parent = ifname("vlan", parent)
    m = _VLAN_NAME.fullmatch(name)
    if m is None or not 1 <= int(m.group(1)) <= 4094:
        raise ParamError("vlan", name, E_VLAN_NAME)
    if name == parent:
        raise ParamError("vlan", value, f"a parent other than the VLAN itself ({E_IFNAME})")
    return VlanSpec(name, parent, int(m.group(1)))
