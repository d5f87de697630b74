"""The layout is the architecture: each room imports only the rooms below it.

Every subpackage of ``mosnet`` says in its docstring what it may import
(``Imports: a, b``); this test holds the code to those lines, holds the lines
to one order of rooms, and keeps modules small.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOSNET = ROOT / "mosnet"
# Lowest first: a room may import only rooms before it.
ORDER = (
    "base", "config", "l2", "dhcp4", "dhcp6", "uplink", "state", "ipv6", "nft",
    "proxy", "macnat", "ovs", "topology", "daemon", "netphase",
)  # fmt: skip
# Edges that break ORDER today; each one is a debt, and the list only shrinks.
PENDING: set[tuple[str, str]] = set()
MAX_TOP_LEVEL = 12
MAX_LINES = 400
PENDING_LONG: set[str] = set()
IMPORTS_LINE = re.compile(r"^Imports: ([a-z0-9_, ]+?)(?: \(|$)", re.M)


def rooms() -> list[str]:
    return sorted(p.parent.name for p in MOSNET.glob("*/__init__.py"))


def declared(room: str) -> set[str]:
    doc = ast.get_docstring(ast.parse((MOSNET / room / "__init__.py").read_text())) or ""
    found = IMPORTS_LINE.search(doc)
    assert found, f"mosnet/{room}/__init__.py: no 'Imports:' line in its docstring"
    names = {name.strip() for name in found.group(1).split(",") if name.strip()}
    return names - {"none"}  # ``Imports: none``: the lowest room


def imported_rooms(room: str) -> dict[str, set[str]]:
    """Other rooms each module of ``room`` imports, by module path."""
    out: dict[str, set[str]] = {}
    for path in sorted((MOSNET / room).rglob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                is_top = parts == ["mosnet"]
                names = [f"mosnet.{a.name}" for a in node.names] if is_top else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found |= {n.split(".")[1] for n in names if n.startswith("mosnet.")}
        out[str(path.relative_to(ROOT))] = found - {room}
    return out


def test_every_room_is_in_the_order() -> None:
    assert sorted(ORDER) == rooms()


@pytest.mark.parametrize("room", ORDER)
def test_room_imports_only_what_it_declares(room: str) -> None:
    allowed = declared(room)
    for module, used in imported_rooms(room).items():
        assert used <= allowed, f"{module} imports {sorted(used - allowed)}, not declared"


@pytest.mark.parametrize("room", ORDER)
def test_declared_imports_point_down(room: str) -> None:
    below = set(ORDER[: ORDER.index(room)])
    upward = {r for r in declared(room) - below if (room, r) not in PENDING}
    assert not upward, f"mosnet/{room} declares imports of higher rooms: {sorted(upward)}"


def test_pending_edges_are_still_used() -> None:
    """A debt paid off leaves this list, so it cannot be quietly used again."""
    for room, other in PENDING:
        used = set().union(*imported_rooms(room).values())
        assert other in used, f"({room!r}, {other!r}) is no longer needed: drop it from PENDING"


def test_few_top_level_modules() -> None:
    top = sorted(p.name for p in MOSNET.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


def _long_modules() -> set[str]:
    long = set()
    for tree in ("mosnet", "init", "initramfs", "bench", "qemu", "tests"):
        for path in (ROOT / tree).rglob("*.py"):
            if sum(1 for _ in path.open()) > MAX_LINES:
                long.add(str(path.relative_to(ROOT)))
    return long


def test_no_module_over_the_limit() -> None:
    """Product, tests, benchmarks and QEMU scripts alike."""
    long = _long_modules()
    assert long <= PENDING_LONG, sorted(long - PENDING_LONG)
    assert PENDING_LONG <= long, f"no longer long: {sorted(PENDING_LONG - long)}"
