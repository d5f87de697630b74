"""docs/architecture.md stays true: its parameter table is the registry's, its rooms the code's."""

from __future__ import annotations

import pathlib
import re

from mosnet.config.registry import PARAMETERS

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
ROW = re.compile(r"^\| `([^`]+)` \| (.+?) \| (.+?) \| (yes|last valid wins) \| (yes|no) \|$", re.M)
ROOM_ROW = re.compile(r"^\| `([a-z0-9]+)` \| .+? \| (.+?) \|$", re.M)


def _section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 3)
    return DOC[start : end if end != -1 else None]


def test_parameter_table_is_the_registry() -> None:
    rows = {m.group(1): m for m in ROW.finditer(_section("Where each parameter is read"))}
    assert set(rows) == set(PARAMETERS)
    for name, entry in PARAMETERS.items():
        row = rows[name]
        assert (row.group(4) == "yes") == entry.repeatable, name
        assert (row.group(5) == "yes") == entry.bakeable, name


def test_room_table_is_the_code() -> None:
    rows = {m.group(1): m.group(2) for m in ROOM_ROW.finditer(_section("Layers"))}
    rooms = {p.parent.name for p in (ROOT / "mosnet").glob("*/__init__.py")}
    assert set(rows) == rooms
    for room, imports in rows.items():
        doc = (ROOT / "mosnet" / room / "__init__.py").read_text()
        line = re.search(r"^Imports: (.*)$", doc, re.M)
        assert line is not None, room
        declared = set(re.findall(r"[a-z0-9]+", line.group(1).split("(")[0])) - {"none"}
        if imports != "everything above":
            assert set(re.findall(r"[a-z0-9]+", imports)) - {"—"} == declared, room
