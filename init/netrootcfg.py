"""Kernel parameters of the netboot roots: ``mosroot=`` (HTTP) and NFS.

``mosroot=http://host[:port]/path/root.squashfs`` (or ``.tar.zst``) needs
``mosroot_sha256=``: an image that cannot be verified is refused, never
booted. ``root=nfs:server:/path[:options]`` (dracut form), ``root=nfs4:…``
and the kernel's ``root=/dev/nfs nfsroot=server:/path[,options]`` name an
NFS root. Parsers raise only ParamError.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mosnet.base.errors import ParamError

ROOT_FORMATS = {".squashfs": "squashfs", ".sqfs": "squashfs", ".tar.zst": "tar.zst"}
DEFAULT_FETCH_TIMEOUT = 600.0  # whole download, retries included
STALL_TIMEOUT = 30.0  # no byte for this long: the attempt failed
MAX_URL = 2048
# NFS roots and .tar.zst roots need the netroot add-on (initramfs/netrootaddon.py)
ADDON_HINT = (
    "boot with the netroot add-on after the image (initrd list: mosnet-initramfs.img "
    "mosnet-netroot.img, or the one file mosnet-initramfs-netroot.img)"
)

_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
_URL_CHARS_RE = re.compile(r"[\x21-\x7e]*")  # printable ASCII, no spaces
_AUTHORITY_END_RE = re.compile(r"[/?#]")  # a path, query or fragment (RFC 3986 3.2)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_PORT_RE = re.compile(r"[0-9]{1,16}")  # ASCII digits; the value is range-checked
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}(%[A-Za-z0-9_.-]{1,15})?")  # %zone: an interface
_NFS_PATH_RE = re.compile(r"/[^\s:,]*")
_NFS_OPTS_RE = re.compile(r"[A-Za-z0-9_.=,:/-]*")
_URL_EXPECTED = "http://<host>[:<port>]/<path>.squashfs|.tar.zst"
_URL_CHARS = "printable ASCII without spaces (percent-encode anything else)"


@dataclass(frozen=True)
class Url:
    """An ``http://`` URL split for a plain-socket client.

    ``parse_url`` and ``resolve_reference`` are the only makers that check:
    their host and path are printable ASCII and the port is 1..65535.
    """

    host: str  # name, IPv4 or IPv6 (without brackets)
    port: int
    path: str  # starts with "/", query included, fragment dropped
    given: str = field(default="", compare=False, repr=False)  # the text parsed, for messages

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 80 else f":{self.port}"
        return f"http://{host}{port}{self.path}"

    @property
    def as_given(self) -> str:
        """The URL as the user wrote it (printable ASCII: parse_url refuses the rest)."""
        return self.given or str(self)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"


def parse_url(text: str, param: str = "mosroot") -> Url:
    """``http://host[:port]/path[?query][#fragment]``; https is refused with the reason.

    Total: any str (lone surrogates from a non-UTF-8 command line included)
    gives a Url or ParamError naming ``param``.
    """
    if len(text) > MAX_URL:
        raise ParamError(param, text[:64] + "…", f"a URL of at most {MAX_URL} characters")
    if not _URL_CHARS_RE.fullmatch(text):
        raise ParamError(param, text, _URL_CHARS)
    scheme, sep, rest = text.partition("://")
    if scheme.lower() == "https":
        raise ParamError(param, text, "http://: the image has no TLS, so https is not supported")
    if not sep or scheme.lower() != "http":
        raise ParamError(param, text, _URL_EXPECTED)
    authority = _AUTHORITY_END_RE.split(rest, maxsplit=1)[0]
    path = rest[len(authority) :].partition("#")[0]
    host, port = _split_authority(authority, text, param)
    return Url(host, port, path if path.startswith("/") else "/" + path, text)


def _split_authority(authority: str, text: str, param: str) -> tuple[str, int]:
    if "@" in authority:
        raise ParamError(param, text, "no user@ in the URL (no authentication is supported)")
    if authority.startswith("["):
        host, bracket, tail = authority[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ParamError(param, text, "[<IPv6 address>][:<port>]")
        port_text = tail[1:] if tail else None
        _check_ipv6(host, text, param)
    else:
        host, colon, after = authority.partition(":")
        port_text = after if colon else None
        if not _HOST_RE.fullmatch(host):
            raise ParamError(param, text, "a host name or address")
    return host, _port(port_text, text, param)


def _check_ipv6(host: str, text: str, param: str) -> None:
    try:
        if _IPV6_RE.fullmatch(host):
            ipaddress.IPv6Address(host)
            return
    except ValueError:
        pass
    raise ParamError(param, text, "a valid IPv6 address in [ ]")


def _port(port_text: str | None, text: str, param: str) -> int:
    """The port stored is the port checked: ASCII digits, 1..65535 as a whole."""
    if port_text is None:
        return 80
    port = int(port_text) if _PORT_RE.fullmatch(port_text) else 0
    if not 0 < port < 65536:
        raise ParamError(param, text, "a port 1..65535")
    return port


def resolve_reference(base: Url, ref: str, param: str = "Location") -> Url:
    """A redirect's target against the URL that answered (RFC 3986 5.2).

    ``http://…`` and ``//host/…`` are parsed whole; ``/path``, ``path``,
    ``../path`` and ``?query`` keep the base's host and port. Total: a Url or
    ParamError naming ``param``.
    """
    if len(ref) > MAX_URL or not _URL_CHARS_RE.fullmatch(ref):
        raise ParamError(param, ref, f"a URL or path of at most {MAX_URL} characters, {_URL_CHARS}")
    if _SCHEME_RE.match(ref) or ref.startswith("//"):
        try:
            return parse_url(ref if ref[0] != "/" else "http:" + ref, param)
        except ParamError as exc:
            raise ParamError(param, ref, exc.expected) from None
    target = ref.partition("#")[0]
    if not target:
        raise ParamError(param, ref, "a URL or a path (a bare #fragment names the same URL)")
    base_path = base.path.partition("?")[0]
    rel, mark, query = target.partition("?")
    if not rel:
        rel = base_path
    elif not rel.startswith("/"):
        rel = base_path[: base_path.rfind("/") + 1] + rel
    path = _remove_dot_segments(rel) + mark + query
    if len(path) > MAX_URL:
        raise ParamError(param, ref, f"a target URL of at most {MAX_URL} characters")
    return Url(base.host, base.port, path)


def _remove_dot_segments(path: str) -> str:
    """``/a/b/../c/./d`` -> ``/a/c/d``; never above ``/``."""
    segments = path.split("/")[1:]
    kept: list[str] = []
    for seg in segments:
        if seg == "..":
            if kept:
                kept.pop()
        elif seg != ".":
            kept.append(seg)
    trailing = "/" if kept and segments[-1] in (".", "..") else ""
    return "/" + "/".join(kept) + trailing


def root_format(url: Url) -> str:
    """``squashfs`` or ``tar.zst``, from the path's ending (query ignored)."""
    path = url.path.partition("?")[0].lower()
    for suffix, kind in ROOT_FORMATS.items():
        if path.endswith(suffix):
            return kind
    raise ParamError("mosroot", url.as_given, "a path ending in .squashfs, .sqfs or .tar.zst")


def parse_sha256(value: str | None) -> str:
    if value is None or not _SHA256_RE.fullmatch(value):
        raise ParamError("mosroot_sha256", value or "", "64 hex digits: the image's sha256")
    return value.lower()


@dataclass(frozen=True)
class NetRoot:
    """A root image to fetch over HTTP, verify and boot from RAM."""

    url: Url
    sha256: str
    format: str  # "squashfs" or "tar.zst"
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    stall_timeout: float = STALL_TIMEOUT


def make_netroot(url: str | None, sha256: str | None, timeout: float | None) -> NetRoot:
    """Combine ``mosroot=``, ``mosroot_sha256=`` and ``mosroot_fetch_timeout=``."""
    parsed = parse_url(url or "")
    fmt = root_format(parsed)
    digest = parse_sha256(sha256)
    return NetRoot(parsed, digest, fmt, timeout if timeout else DEFAULT_FETCH_TIMEOUT)


# ------------------------------------------------------------------------ NFS


@dataclass(frozen=True)
class NfsRoot:
    server: str
    path: str
    options: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{host}:{self.path}"

    def __str__(self) -> str:
        opts = f":{','.join(self.options)}" if self.options else ""
        return f"nfs:{self.source}{opts}"


_NFS_EXPECTED = "nfs:<server>:/<path>[:<options>] or nfsroot=<server>:/<path>[,<options>]"


def parse_nfs(value: str, *, nfs4: bool = False, param: str = "root") -> NfsRoot:
    """``server:/path[:opts]`` (dracut) or ``server:/path,opts`` (nfsroot=)."""
    bracketed = value.startswith("[")
    if bracketed:
        server, _, rest = value[1:].partition("]")
        rest = rest[1:] if rest.startswith(":") else "\0"
    else:
        server, _, rest = value.partition(":")
    path, sep, opts = rest.partition(":")
    if not sep:
        path, _, opts = rest.partition(",")
    path_ok = _NFS_PATH_RE.fullmatch(path) and path.isprintable()
    if not server or not path_ok or not _NFS_OPTS_RE.fullmatch(opts):
        raise ParamError(param, value, _NFS_EXPECTED)
    if bracketed or ":" in server:
        _check_ipv6(server, value, param)  # a %zone too: interface-name characters only
    elif not _HOST_RE.fullmatch(server):
        raise ParamError(param, value, _NFS_EXPECTED)
    options = tuple(o for o in opts.split(",") if o)
    if nfs4 and not any(o.startswith(("vers=", "nfsvers=")) for o in options):
        options = ("vers=4", *options)
    return NfsRoot(server, path, options)
