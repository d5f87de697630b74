"""resolv.conf: the one writer, merging what IPv4 and IPv6 know of DNS.

:class:`ResolvConf` owns the file for a boot or a daemon: the DHCPv4 lease
(or the static ``nameserver=``s) and IPv6 (RDNSS, DHCPv6) each hand in their
servers and search domains, and every write merges both
(:func:`merge_nameservers`) into every target (``/run/mosnet/resolv.conf``,
``/etc/resolv.conf``, the real root's once it is mounted).

If the target is a symlink (e.g. to systemd-resolved's stub file) we replace
the link itself with a regular file instead of writing through it: writing
through would clobber a file another daemon owns (and that may live on a
read-only or not-yet-mounted filesystem), while the rename keeps the update
atomic for readers of /etc/resolv.conf.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mosnet.base import atomicfile, log
from mosnet.base.errors import MosnetError
from mosnet.dhcp4.lease import valid_name

MAX_NAMESERVERS = 3  # glibc MAXNS
MAX_SEARCH = 6  # the classic glibc MAXDNSRCH
_log = log.get("resolvconf")


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


@dataclass(frozen=True)
class DnsInfo:
    """What one source knows: servers, search domains, and a name for the comment."""

    servers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    source: str = ""

    @classmethod
    def of(cls, servers: Iterable[object], search: Iterable[str], source: str) -> DnsInfo:
        return cls(tuple(map(str, servers)), tuple(search), source)


class ResolvConf:
    """The one writer of resolv.conf: IPv4 and IPv6 merged, written to every target.

    Thread-safe: the daemon's DHCPv4 and IPv6 threads share one. Never raises:
    a target that cannot be written is logged and the others are written.
    ``static`` (``nameserver=``) comes first; with ``peer`` False (``rd.peerdns=0``)
    the servers DHCP and router advertisements name are kept but not written.
    """

    def __init__(
        self,
        targets: Sequence[str],
        v4: DnsInfo = DnsInfo(),
        v6: DnsInfo = DnsInfo(),
        *,
        static: DnsInfo = DnsInfo(),
        peer: bool = True,
    ) -> None:
        self.targets = list(dict.fromkeys(targets))
        self.v4, self.v6, self.static, self.peer = v4, v6, static, peer
        self._lock = threading.Lock()

    def retarget(self, targets: Sequence[str]) -> ResolvConf:
        """The same sources, written elsewhere (the daemon after a fork)."""
        return ResolvConf(targets, self.v4, self.v6, static=self.static, peer=self.peer)

    def set_v4(self, info: DnsInfo) -> bool:
        with self._lock:
            self.v4 = info
            return self._write(self.targets)

    def set_v6(self, info: DnsInfo) -> bool:
        with self._lock:
            self.v6 = info
            return self._write(self.targets)

    def add_target(self, path: str) -> bool:
        """Write ``path`` too from now on (the real root's /etc), and at once."""
        with self._lock:
            if path not in self.targets:
                self.targets.append(path)
            return self._write([path])

    def write(self) -> bool:
        with self._lock:
            return self._write(self.targets)

    def text(self) -> str | None:
        """The merged file, or None when no source has a server."""
        sources = (self.static, self.v4, self.v6) if self.peer else (self.static,)
        if not any(i.servers for i in sources):
            return None
        peers = merge_nameservers(self.v4.servers, self.v6.servers) if self.peer else []
        servers = _unique([*self.static.servers, *peers])[:MAX_NAMESERVERS]
        search = merge_search(*(i.search for i in sources))
        comment = "; ".join(i.source for i in sources if i.servers and i.source)
        return render(servers, search, comment)

    def _write(self, targets: Sequence[str]) -> bool:
        try:
            text = self.text()
        except ResolvConfError as exc:
            _log.warning("resolv.conf not written: %s", exc)
            return False
        if text is None:
            return False
        ok = True
        for path in targets:
            try:
                write_atomic(path, text)
            except OSError as exc:  # a read-only real root: /run/mosnet still has it
                _log.warning("%s not written: %s", path, exc.strerror or exc)
                ok = False
        return ok
