"""Mount an NFS root with mount(2) and the kernel's text options (no mount.nfs).

mount.nfs normally resolves the server, negotiates the version and passes
``addr=``/``clientaddr=``; here PID 1 does that: the server's address,
our own address towards it (the NFSv4.0 callback address), and, when no
``vers=`` is given, NFS 4.2, 4.1, 4.0, then 3 in turn. NFSv3 gets
``nolock`` unless told otherwise (no rpc.statd in the initramfs); a server
without a portmapper needs ``port=`` and ``mountport=`` in the options.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from init import syscalls
from init.httpget import resolve
from init.netrootcfg import ADDON_HINT, NfsRoot
from mosnet.base import log
from mosnet.base.errors import MosnetError

if TYPE_CHECKING:
    from init.modindex import ModuleIndex

_log = log.get("init.nfsroot")

MODULES = ("nfs", "nfsv4", "nfsv3")
TRY_VERSIONS = ("4.2", "4.1", "4.0", "3")
NFS_PORT = 2049

MountFn = Callable[[str | None, str, str | None, int, str | None], None]


class NfsRootError(MosnetError):
    """No NFS client in the image, or no version/option set mounted the root."""


def server_address(server: str) -> str:
    """The server as an address (mount(2) does no DNS)."""
    try:
        return resolve(server, NFS_PORT)[0][1][0]
    except (OSError, IndexError) as exc:
        raise NfsRootError(f"NFS server {server}: cannot resolve: {exc}") from None


def local_address(addr: str) -> str | None:
    """Our source address towards ``addr`` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((addr, NFS_PORT))
            return str(s.getsockname()[0])
    except OSError:
        return None


def _has(options: Sequence[str], *keys: str) -> bool:
    return any(o.split("=", 1)[0] in keys for o in options)


def option_sets(spec: NfsRoot, addr: str, client: str | None) -> list[list[str]]:
    """The option strings to try in order: one if vers= was given, else one per version."""
    base = [o for o in spec.options if o not in ("ro", "rw")]
    if not _has(base, "addr"):
        base.append(f"addr={addr}")
    versions = [None] if _has(base, "vers", "nfsvers") else list(TRY_VERSIONS)
    sets = []
    for vers in versions:
        opts = list(base) + ([f"vers={vers}"] if vers else [])
        v3 = vers == "3" or any(o in ("vers=3", "nfsvers=3") for o in opts)
        if v3 and not _has(opts, "lock", "nolock"):
            opts.append("nolock")
        if not v3 and client and not _has(opts, "clientaddr"):
            opts.append(f"clientaddr={client}")
        sets.append(opts)
    return sets


def require_client(index: ModuleIndex) -> None:
    """NfsRootError unless the image has the NFS client (a module or built in)."""
    if not index.known("nfs"):
        raise NfsRootError(f"NFS root: this image has no NFS client module; {ADDON_HINT}")


def _load_modules() -> None:
    from init import modindex, modules  # read the index only for an NFS root

    index = modindex.ModuleIndex.for_image(os.uname().release)
    require_client(index)
    loader = modules.Loader(index)
    for name in MODULES:
        loader.load(name)


def mount_nfs(
    spec: NfsRoot,
    target: str,
    readonly: bool,
    *,
    mount: MountFn = syscalls.sys_mount,
    load: Callable[[], None] = _load_modules,
) -> str:
    """Mount ``spec`` on ``target``; the options that worked, or NfsRootError."""
    load()
    addr = server_address(spec.server)
    flags = syscalls.MS_RDONLY if readonly or "ro" in spec.options else 0
    if "rw" in spec.options:
        flags = 0
    failures = []
    for opts in option_sets(spec, addr, local_address(addr)):
        data = ",".join(opts)
        try:
            mount(spec.source, target, "nfs", flags, data)
        except OSError as exc:
            failures.append(f"{data}: {exc.strerror or exc}")
            _log.warning("NFS root %s with %s: %s", spec.source, data, exc.strerror or exc)
            continue
        _log.info("mounted NFS root %s on %s (%s)", spec.source, target, data)
        return data
    raise NfsRootError(f"cannot mount NFS root {spec.source}: " + "; ".join(failures))
