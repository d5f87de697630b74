"""The blocks of docs/boot-recipes.md as data, so tests boot what the doc says.

A recipe block is the fenced code block right after a ``<!-- recipe: NAME -->``
line. ``block`` substitutes the doc's placeholders (``BOOT_SERVER``, the
``/srv`` roots) and nothing else.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from qemu.vm import TOP

DOC = TOP / "docs" / "boot-recipes.md"
NAMES = (
    "http-files",
    "ipxe-script",
    "ipxe-dnsmasq",
    "pxelinux-files",
    "pxelinux-cfg",
    "pxelinux-dnsmasq",
    "grub-files",
    "grub-entry",
    "qemu",
    "hetzner-cmdline",
    "hetzner-bake",
)
_BLOCK = re.compile(r"^<!-- recipe: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)^```$", re.M | re.S)


def blocks(text: str | None = None) -> dict[str, str]:
    """Every recipe block of the doc by name (a name given twice is an error)."""
    found: dict[str, str] = {}
    for name, body in _BLOCK.findall(DOC.read_text() if text is None else text):
        if name in found:
            raise ValueError(f"recipe {name!r} appears twice in {DOC.name}")
        found[name] = body
    return found


def block(name: str, server: str = "BOOT_SERVER", srv: Path | None = None) -> str:
    """One block with ``BOOT_SERVER`` and ``/srv`` replaced."""
    text = blocks()[name]
    text = text.replace("BOOT_SERVER", server)
    return text.replace("/srv/", f"{srv}/") if srv is not None else text


def shell_words(text: str) -> list[str]:
    """A one-command shell block as argv (backslash continuations joined)."""
    return shlex.split(text.replace("\\\n", " "))


def dnsmasq_args(text: str) -> list[str]:
    """dnsmasq.conf lines as command-line options (``enable-tftp`` -> ``--enable-tftp``)."""
    lines = (line.strip() for line in text.splitlines())
    return [f"--{line}" for line in lines if line and not line.startswith("#")]
