"""Render and atomically write /etc/resolv.conf.

If the target is a symlink (e.g. to systemd-resolved's stub file) we replace
the link itself with a regular file instead of writing through it: writing
through would clobber a file another daemon owns (and that may live on a
read-only or not-yet-mounted filesystem), while the rename keeps the update
atomic for readers of /etc/resolv.conf.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from mosnet import atomicfile
from mosnet.dhcp4.lease import valid_name
from mosnet.errors import MosnetError

MAX_NAMESERVERS = 3  # glibc MAXNS
MAX_SEARCH = 6  # the classic glibc MAXDNSRCH


class ResolvConfError(MosnetError):
    """An entry that must not go into resolv.conf."""


def render(nameservers: Iterable[object], search: Iterable[str], source_comment: str) -> str:
    """Validated resolv.conf text; extra entries beyond the glibc limits are cut."""
    servers: list[str] = []
    for ns in nameservers:
        try:
            addr = ipaddress.ip_address(str(ns))
        except ValueError:
            raise ResolvConfError(f"nameserver {ns!r} is not an IP address") from None
        if str(addr) not in servers:
            servers.append(str(addr))
    domains: list[str] = []
    for name in search:
        reason = valid_name(name)
        if reason:
            raise ResolvConfError(f"search domain {name!r}: {reason}")
        if name not in domains:
            domains.append(name.rstrip("."))
    comment = " ".join(source_comment.split())  # one line, whatever we were given
    lines = [f"# {comment}"] if comment else []
    lines += [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    if domains:
        lines.append("search " + " ".join(domains[:MAX_SEARCH]))
    return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Mode 0644, atomically; a symlink at ``path`` is replaced, not followed."""
    atomicfile.write_bytes(path, text.encode("utf-8"))


def merge_nameservers(
    v4: Iterable[object], v6: Iterable[object], limit: int = MAX_NAMESERVERS
) -> list[str]:
    """IPv4 and IPv6 servers in at most ``limit`` slots (glibc reads only 3).

    Rule: the first IPv4 server, then the first IPv6 server, then the other
    IPv4 servers, then the other IPv6 ones, duplicates dropped, cut at
    ``limit``. So with both families present each keeps at least one slot and
    a dead family cannot take every slot; IPv4 goes first because it is the
    family mosnet configures first at boot.
    """
    four = _unique(v4)
    six = _unique(v6)
    order = four[:1] + six[:1] + four[1:] + six[1:]
    return _unique(order)[:limit]


def merge_search(*lists: Iterable[str]) -> list[str]:
    """Search domains of all sources in order, without duplicates (render cuts at 6)."""
    out: list[str] = []
    for names in lists:
        for name in names:
            name = name.rstrip(".").lower()
            if name and name not in out:
                out.append(name)
    return out


def _unique(items: Iterable[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        text = str(item)
        if text not in out:
            out.append(text)
    return out
