"""A copy of the Open vSwitch daemons that outlives switch_root (issue 13 §6).

switch_root empties the initramfs, so a daemon that dies afterwards could
not be started again from there. The OVS add-on therefore ships a manifest
(``MANIFEST``, written by ``initramfs/addon.py``): the two daemons, every
library they load (glibc included) and the loader. PID 1 copies those files
into ``/run/mosnet/ovs`` before it starts the daemons; /run is carried into
the real root, so the copy is there on both sides of the switch:

    /run/mosnet/ovs/ld.so                 the loader
    /run/mosnet/ovs/lib/<soname>          every library, under the name ld.so looks for
    /run/mosnet/ovs/bin/<program>         ovsdb-server, ovs-vswitchd

The programs run through that loader (``ld.so --library-path``), so neither
the initramfs nor the real root's libraries are ever mixed in; ``--argv0``
keeps the ``@`` name systemd's kill sweeps spare and OVS derives its program
name from. Without a manifest (OVS installed on a normal system) the system's
own binaries are used, as before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from mosnet.base import log
from mosnet.base.errors import MosnetError, shown

MANIFEST = "/usr/lib/mosnet/ovs-runtime.txt"
RUNTIME_DIR = "/run/mosnet/ovs"
KINDS = ("loader", "program", "library")

_log = log.get("ovs.runtime")


class OvsRuntimeError(MosnetError):
    """The manifest is unreadable or malformed, or a file could not be copied."""


@dataclass(frozen=True)
class Manifest:
    loader: str
    programs: tuple[str, ...]
    libraries: tuple[str, ...]


def parse_manifest(text: str) -> Manifest:
    """``<kind> <absolute path>`` lines (``#`` comments); exactly one loader."""
    found: dict[str, list[str]] = {k: [] for k in KINDS}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2 or words[0] not in KINDS or not words[1].startswith("/"):
            raise OvsRuntimeError(
                f"{MANIFEST} line {number}: bad entry {shown(line)}, "
                "expected '<loader|program|library> /absolute/path'"
            )
        found[words[0]].append(words[1])
    if len(found["loader"]) != 1 or not found["program"]:
        raise OvsRuntimeError(f"{MANIFEST}: expected one loader and at least one program")
    return Manifest(found["loader"][0], tuple(found["program"]), tuple(found["library"]))


@dataclass(frozen=True)
class Runtime:
    """An installed copy: where it is and how to run a program from it."""

    root: str = RUNTIME_DIR

    @property
    def loader(self) -> str:
        return f"{self.root}/ld.so"

    def program(self, name: str) -> str:
        return f"{self.root}/bin/{name}"

    def has(self, name: str) -> bool:
        return os.access(self.loader, os.X_OK) and os.path.isfile(self.program(name))

    def command(self, argv: Sequence[str]) -> tuple[str, list[str]]:
        """(executable, argv) running ``argv`` (argv[0] ``@name`` or ``name``) from here."""
        title = argv[0]
        name = title.removeprefix("@")
        lib = f"{self.root}/lib"
        wrapped = [title, "--argv0", title, "--library-path", lib, "--inhibit-cache"]
        return self.loader, [*wrapped, self.program(name), *argv[1:]]

    def size(self) -> int:
        """Bytes the copy holds in /run (RAM: /run is a tmpfs)."""
        total = 0
        for top, _dirs, files in os.walk(self.root):
            total += sum(os.lstat(os.path.join(top, f)).st_size for f in files)
        return total


def find(root: str = RUNTIME_DIR) -> Runtime | None:
    """The installed runtime at ``root``, if there is one."""
    rt = Runtime(root)
    return rt if os.access(rt.loader, os.X_OK) else None


def _copy(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
    tmp = f"{dst}.tmp"
    shutil.copyfile(src, tmp)  # follows symlinks: the file lands under its soname
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)  # a half-copied library is never loaded


def install(manifest: str = MANIFEST, root: str = RUNTIME_DIR) -> Runtime | None:
    """Copy the manifest's files into ``root``; None without a manifest.

    Raises OvsRuntimeError when the manifest is bad or a copy fails (a full
    /run); the caller then runs the daemons from the initramfs, as before.
    """
    try:
        with open(manifest, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OvsRuntimeError(f"{manifest}: {exc.strerror or exc}") from None
    m = parse_manifest(text)
    rt = Runtime(root)
    plan = [(p, rt.program(os.path.basename(p))) for p in m.programs]
    plan += [(p, f"{root}/lib/{os.path.basename(p)}") for p in m.libraries]
    plan.append((m.loader, rt.loader))  # last: ``find`` sees a runtime only when complete
    for src, dst in plan:
        try:
            _copy(src, dst)
        except OSError as exc:
            raise OvsRuntimeError(f"copying {src} to {dst}: {exc.strerror or exc}") from None
    _log.info("OVS runtime in %s: %d files, %.1f MB", root, len(plan), rt.size() / 1e6)
    return rt
