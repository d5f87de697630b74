"""Discovered NICs as JSON, so plans can be built and tested without the hardware.

Format: ``{"links": [{"name", "index", "mac", "driver", "bus_path", "kind"}, ...]}``
(the fields of ``mosnet.uplink.discover.Nic``). ``mosnet discover --json`` writes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from mosnet.base.errors import MosnetError
from mosnet.uplink.discover import Nic

_FIELDS = tuple(f.name for f in fields(Nic) if f.name != "mtu")  # mtu: optional, 1500


class FixtureError(MosnetError):
    """A links fixture that is not what ``dumps`` writes."""


def dumps(nics: tuple[Nic, ...]) -> str:
    return json.dumps({"links": [asdict(n) for n in nics]}, indent=2) + "\n"


def loads(text: str) -> tuple[Nic, ...]:
    try:
        data: Any = json.loads(text)
        return tuple(_nic(entry) for entry in data["links"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FixtureError(f"bad links fixture: {exc}") from None


def load(path: str) -> tuple[Nic, ...]:
    with open(path, encoding="utf-8") as f:
        return loads(f.read())


def _nic(entry: dict[str, Any]) -> Nic:
    missing = [k for k in _FIELDS if k not in entry]
    if missing:
        raise FixtureError(f"link entry {entry!r} lacks {', '.join(missing)}")
    return Nic(
        str(entry["name"]),
        int(entry["index"]),
        str(entry["mac"]).lower(),
        str(entry["driver"]),
        str(entry["bus_path"]),
        str(entry["kind"]),
        _mtu(entry.get("mtu", 1500)),
    )


def _mtu(value: Any) -> int:
    if type(value) is not int or not 68 <= value <= 65535:
        raise FixtureError(f"link mtu {value!r} is not 68-65535")
    return value
