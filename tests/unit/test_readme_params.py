"""README's kernel parameter tables name exactly the parameters of the registry."""

from __future__ import annotations

import re
from pathlib import Path

from mosnet.config import registry

README = Path(__file__).resolve().parents[2] / "README.md"
_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)[=`<]")


def section(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same level."""
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    end = text.find(f"\n{level} ", start + len(heading) + 2)
    return text[start : end if end >= 0 else len(text)]


def table_names(text: str) -> set[str]:
    """Parameter names in the first column of every ``| parameter | meaning |`` table."""
    names: set[str] = set()
    in_table = False
    for line in text.splitlines():
        if line.startswith("| parameter |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            first = re.split(r"(?<!\\)\|", line)[1]
            names |= set(_NAME.findall(first))
    return names


def test_the_readme_tables_and_the_registry_name_the_same_parameters() -> None:
    names = table_names(section(README.read_text(), "## Kernel parameters"))
    assert not names - set(registry.PARAMETERS), "in README, not in the registry"
    assert not set(registry.PARAMETERS) - names, "in the registry, not in README"


def test_the_table_parser_reads_every_form_of_the_first_column() -> None:
    text = (
        "| parameter | meaning |\n|---|---|\n"
        "| `mosip4=<a>,<b>` | x |\n| `ro` / `rw` | y |\n| `rootwait`, `rootwait=<s>` | z |\n"
        "| `mosbridge=auto\\|linux` | w |\n| `-- args` | v |\n\nafter `quiet` the table ends\n"
    )
    assert table_names(text) == {"mosip4", "ro", "rw", "rootwait", "mosbridge"}
