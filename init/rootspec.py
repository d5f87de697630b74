"""What ``root=`` names: a device path, a UUID or label, MAJ:MIN, or an NFS root.

``parse_root`` reads one value the way the kernel and dracut do; finding the
device is ``init.rootdev``'s, mounting an NFS root ``init.nfsroot``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mosnet.base.errors import ParamError
from mosnet.config import registry

ROOT_KINDS = ("path", "uuid", "label", "partuuid", "partlabel", "devnum", "nfs", "none")
MAX_PARTITIONS = 255  # a disk has at most DISK_MAX_PARTS (256) minors
MAX_MAJOR, MAX_MINOR = (1 << 12) - 1, (1 << 20) - 1  # the kernel's dev_t: 12 + 20 bits
_UUID_RE = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]*")
_DEVNUM_RE = re.compile(r"([0-9]{1,9}):([0-9]{1,9})")


@dataclass(frozen=True)
class RootSpec:
    """What ``root=`` names. ``value`` is lower-cased for the uuid kinds."""

    kind: str = "none"
    value: str = ""
    partnroff: int = 0  # PARTUUID=.../PARTNROFF=n: partition number offset

    @property
    def supported(self) -> bool:
        """A block device to look for; nfs is mounted by init.nfsroot instead."""
        return self.kind not in ("nfs", "none")

    def __str__(self) -> str:
        if self.kind in ("path", "devnum"):
            return self.value
        if self.kind == "none":
            return "(no root=)"
        if self.kind == "nfs":
            return f"nfs:{self.value}"
        text = f"{self.kind.upper()}={self.value}"
        return f"{text}/PARTNROFF={self.partnroff}" if self.partnroff else text


def parse_root(value: str) -> RootSpec:
    """One ``root=`` value. Raises only ParamError."""
    if value in ("/dev/nfs", "nfs") or value.startswith(("nfs:", "nfs4:")):
        return RootSpec("nfs", value.partition(":")[2])
    if value.startswith("/dev/") and len(value) > 5 and "\0" not in value:
        return RootSpec("path", value)
    prefix, sep, rest = value.partition("=")
    prefix = prefix.upper()
    if sep and prefix in ("UUID", "PARTUUID"):
        return _parse_uuid_root(prefix, rest, value)
    if sep and prefix in ("LABEL", "PARTLABEL") and rest:
        return RootSpec(prefix.lower(), rest)
    m = _DEVNUM_RE.fullmatch(value)
    if m and int(m[1]) <= MAX_MAJOR and int(m[2]) <= MAX_MINOR:
        return RootSpec("devnum", f"{int(m[1])}:{int(m[2])}")
    raise ParamError("root", value, registry.ROOT_EXPECTED)


def _parse_uuid_root(prefix: str, rest: str, token: str) -> RootSpec:
    uuid, slash, offset = rest.partition("/")
    offset_n = 0
    if slash:
        key, eq, num = offset.partition("=")
        if prefix != "PARTUUID" or key.upper() != "PARTNROFF" or not eq:
            raise ParamError("root", token, f"{prefix}=<hex uuid>")
        if not re.fullmatch(r"-?[0-9]{1,3}", num) or abs(int(num)) > MAX_PARTITIONS:
            bound = f"-{MAX_PARTITIONS}..{MAX_PARTITIONS}"
            raise ParamError("root", token, f"PARTUUID=<uuid>/PARTNROFF=<integer {bound}>")
        offset_n = int(num)
    if not _UUID_RE.fullmatch(uuid):
        raise ParamError("root", token, f"{prefix}=<hex digits and dashes>")
    return RootSpec(prefix.lower(), uuid.lower(), offset_n)
