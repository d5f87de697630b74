"""The init-related kernel parameters, parsed once into a frozen BootConfig.

Parse, don't die: a malformed value of one of *our* parameters becomes a
ParamError in the returned tuple and that field keeps its default, so one typo
never stops the rest of the command line from applying. Parameters we do not
know are ignored; the kernel line carries many that belong to others.

Which parameters are the boot's, their form and expected text: the registry
(``mosnet.config.registry``), which ``parse`` dispatches through; what
``root=`` names: ``init.rootspec``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from init.netrootcfg import (
    NetRoot,
    NfsRoot,
    make_netroot,
    parse_nfs,
    parse_sha256,
    parse_url,
    root_format,
)
from init.rootspec import ROOT_KINDS as ROOT_KINDS  # re-exported: what root= may name
from init.rootspec import RootSpec as RootSpec
from init.rootspec import parse_root
from mosnet.base.errors import MosnetError, ParamError
from mosnet.config import kcmdline, registry
from mosnet.config.kcmdline import CmdLine, Param

T = TypeVar("T")

# The kernel's own fallback list (init/main.c, kernel_init).
DEFAULT_INITS = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
DEFAULT_ROOT_TIMEOUT = 30.0
# Bare ``rootwait`` means "forever" to the kernel; PID 1 still wants to reach
# its emergency path eventually, so it is bounded.
ROOTWAIT_TIMEOUT = 300.0
MAX_SECONDS = registry.MAX_SECONDS
# mosinit=: what PID 1 does once the network is up. ``switchroot`` mounts
# root= itself; ``chain`` execs the /init of a distro initramfs that this
# image was appended to (build.sh --append), which mounts the root its way.
MOSINIT_MODES = ("switchroot", "chain")

_FSTYPE_RE = re.compile(r"[a-z0-9_.,-]+")
_UINT_RE = re.compile(r"[0-9]{1,9}")  # bounded: int() of 5000 digits raises
_SECONDS_RE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


class NetRootRefused(MosnetError):
    """mosroot= was given but is unusable; booting another root instead would hide it."""


@dataclass(frozen=True)
class BootConfig:
    root: RootSpec = field(default_factory=RootSpec)
    rootfstype: str | None = None
    rootflags: str | None = None
    readonly: bool = True  # the kernel mounts root read-only unless ``rw``
    init: str | None = None
    init_args: tuple[str, ...] = ()
    rootwait: bool = False
    rootwait_seconds: int | None = None  # ``rootwait=<s>`` (Linux >= 6.5)
    rootdelay: int = 0
    mosroot_timeout: float | None = None
    mosshell: bool = False
    mosdebug: bool = False
    consoles: tuple[str, ...] = ()
    nfs: NfsRoot | None = None  # root=nfs:…, root=nfs4:…, root=/dev/nfs nfsroot=…
    netroot: NetRoot | None = None  # mosroot= with a valid mosroot_sha256=
    netroot_error: str | None = None  # mosroot= given but refused: never boot another root
    # raw values, combined by parse() once the whole line is read
    mosroot: str | None = None
    mosroot_sha256: str | None = None
    mosroot_fetch_timeout: float | None = None
    nfsroot: str | None = None
    mosinit: str = "switchroot"

    @property
    def chain(self) -> bool:
        return self.mosinit == "chain"

    @property
    def root_timeout(self) -> float:
        """How long to wait for the root device; always finite."""
        if self.mosroot_timeout is not None:
            return self.mosroot_timeout
        if self.rootwait_seconds is not None:
            return float(self.rootwait_seconds)
        return ROOTWAIT_TIMEOUT if self.rootwait else DEFAULT_ROOT_TIMEOUT

    @property
    def fstypes(self) -> tuple[str, ...]:
        """``rootfstype`` may be a comma-separated list, as for the kernel."""
        if not self.rootfstype:
            return ()
        return tuple(t for t in self.rootfstype.split(",") if t)

    @property
    def init_candidates(self) -> tuple[str, ...]:
        return (self.init,) if self.init else DEFAULT_INITS

    @property
    def primary_console(self) -> str | None:
        """The last ``console=`` is /dev/console, so it is where users look."""
        return self.consoles[-1] if self.consoles else None

    @property
    def console_device(self) -> str | None:
        """``console=ttyS0,115200n8`` -> ``/dev/ttyS0``; None if not a tty name."""
        name = (self.primary_console or "").split(",", 1)[0]
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            return None
        return f"/dev/{name}"


def _seconds_int(param: Param) -> int:
    value = param.value or ""
    if not _UINT_RE.fullmatch(value) or int(value) > MAX_SECONDS:
        raise ParamError(param.key, value, registry.expected(param.key))
    return int(value)


def _seconds_float(param: Param) -> float:
    value = param.value or ""
    if not _SECONDS_RE.fullmatch(value) or float(value) > MAX_SECONDS:
        raise ParamError(param.key, value, registry.expected(param.key))
    return float(value)


# The handlers run once the dispatcher checked the form against the registry:
# a ``key=value`` parameter has a non-empty value, a flag none.


def _root(cfg: BootConfig, p: Param) -> BootConfig:
    value = p.value or ""
    spec = parse_root(value)
    nfs = None
    if spec.kind == "nfs" and spec.value:
        nfs = parse_nfs(spec.value, nfs4=value.startswith("nfs4:"))
    return replace(cfg, root=spec, nfs=nfs)


def _mosroot(cfg: BootConfig, p: Param) -> BootConfig:
    value = p.value or ""
    root_format(parse_url(value))  # checked here, so a bad later one cannot replace a good one
    return replace(cfg, mosroot=value)


def _mosroot_sha256(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, mosroot_sha256=parse_sha256(p.value))


def _mosroot_fetch_timeout(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, mosroot_fetch_timeout=_seconds_float(p))


def _nfsroot(cfg: BootConfig, p: Param) -> BootConfig:
    value = p.value or ""
    parse_nfs(value, param="nfsroot")
    return replace(cfg, nfsroot=value)


def _rootfstype(cfg: BootConfig, p: Param) -> BootConfig:
    value = p.value or ""
    if not _FSTYPE_RE.fullmatch(value):
        raise ParamError(p.key, value, registry.expected(p.key))
    return replace(cfg, rootfstype=value)


def _rootflags(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, rootflags=p.value)


def _ro(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, readonly=True)


def _rw(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, readonly=False)


def _init(cfg: BootConfig, p: Param) -> BootConfig:
    value = p.value or ""
    if not value.startswith("/") or "\0" in value:
        raise ParamError(p.key, value, registry.expected(p.key))
    return replace(cfg, init=value)


def _rootwait(cfg: BootConfig, p: Param) -> BootConfig:
    if p.value is None:
        return replace(cfg, rootwait=True, rootwait_seconds=None)
    return replace(cfg, rootwait=True, rootwait_seconds=_seconds_int(p))


def _rootdelay(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, rootdelay=_seconds_int(p))


def _mosroot_timeout(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, mosroot_timeout=_seconds_float(p))


def _mosshell(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, mosshell=registry.truth(p.key, p.value))


def _mosdebug(cfg: BootConfig, p: Param) -> BootConfig:
    return replace(cfg, mosdebug=registry.truth(p.key, p.value))


def _mosinit(cfg: BootConfig, p: Param) -> BootConfig:
    value = (p.value or "").lower()
    if value not in MOSINIT_MODES:
        raise ParamError(p.key, p.value or "", registry.expected(p.key))
    return replace(cfg, mosinit=value)


def _console(cfg: BootConfig, p: Param) -> BootConfig:
    # ``console=`` with no value is legal for the kernel (no console): the
    # registry marks it lenient, so the dispatcher skips it without a word.
    return replace(cfg, consoles=(*cfg.consoles, p.value or ""))


Handler = Callable[[BootConfig, Param], BootConfig]
HANDLERS: dict[str, Handler] = {
    "root": _root,
    "rootfstype": _rootfstype,
    "rootflags": _rootflags,
    "ro": _ro,
    "rw": _rw,
    "init": _init,
    "rootwait": _rootwait,
    "rootdelay": _rootdelay,
    "mosroot_timeout": _mosroot_timeout,
    "mosshell": _mosshell,
    "mosdebug": _mosdebug,
    "console": _console,
    "mosinit": _mosinit,
    "mosroot": _mosroot,
    "mosroot_sha256": _mosroot_sha256,
    "mosroot_fetch_timeout": _mosroot_fetch_timeout,
    "nfsroot": _nfsroot,
}


def parse(text: str | bytes | CmdLine) -> tuple[BootConfig, tuple[ParamError, ...]]:
    """Parse a kernel command line; never raises.

    Parameters apply in order, so the last valid occurrence wins; an invalid
    one leaves the previous value (or the default) in place.
    """
    line = text if isinstance(text, CmdLine) else kcmdline.parse_line(text)
    cfg = BootConfig(init_args=line.init_args or ())
    errors: list[ParamError] = []
    for param in line.params:
        entry = registry.lookup(param.key, "boot")
        if entry is None:
            continue  # someone else's parameter
        try:
            cfg = _apply(entry, cfg, param)
        except ParamError as exc:
            errors.append(exc)
    return _combine_netroot(cfg, errors), tuple(errors)


def _apply(entry: registry.Parameter, cfg: BootConfig, p: Param) -> BootConfig:
    """One parameter; only ParamError leaves, whatever the handler does."""
    if p.value is not None and kcmdline.undecodable(p.value):
        raise ParamError(p.key, p.value, "UTF-8 text (the value holds bytes that are not)")
    if not registry.fits(entry, p):  # a lenient parameter in a form it ignores
        return cfg
    try:
        return HANDLERS[p.key](cfg, p)
    except ParamError:
        raise
    except Exception as exc:  # a bug here must cost one parameter, not the boot
        expected = f"a valid {p.key}= (internal error: {exc!r})"
        raise ParamError(p.key, p.value or "", expected) from exc


def _combine_netroot(cfg: BootConfig, errors: list[ParamError]) -> BootConfig:
    """Parameters that only make sense together, checked once the line is read."""
    if cfg.root.kind == "nfs" and cfg.nfs is None and cfg.nfsroot is not None:
        nfsroot = cfg.nfsroot
        nfs = _combined(errors, "nfsroot", nfsroot, lambda: parse_nfs(nfsroot, param="nfsroot"))
        cfg = replace(cfg, nfs=nfs)
    if cfg.mosroot is None:
        # mosroot= given, but no occurrence was usable: never boot another root
        refused = [e for e in errors if e.param == "mosroot"]
        return replace(cfg, netroot_error=str(refused[-1])) if refused else cfg
    url, digest, timeout = cfg.mosroot, cfg.mosroot_sha256, cfg.mosroot_fetch_timeout
    bad_digest = [e for e in errors if e.param == "mosroot_sha256"]
    if digest is None and bad_digest:  # already reported: refuse with that reason
        return replace(cfg, netroot_error=str(bad_digest[-1]))
    net = _combined(errors, "mosroot", url, lambda: make_netroot(url, digest, timeout))
    if net is None:
        return replace(cfg, netroot_error=str(errors[-1]))
    return replace(cfg, netroot=net)


def _combined(errors: list[ParamError], key: str, value: str, build: Callable[[], T]) -> T | None:
    """``build()``, or None with its ParamError (any other error as one) recorded."""
    try:
        return build()
    except ParamError as exc:
        errors.append(exc)
    except Exception as exc:  # a bug must cost this parameter only
        errors.append(ParamError(key, value, f"a valid {key}= (internal error: {exc!r})"))
    return None


def log_errors(errors: tuple[ParamError, ...], logger: logging.Logger) -> None:
    """One line per bad parameter: name, token and the form we expected."""
    for err in errors:
        logger.warning("ignoring kernel parameter %s", err)
