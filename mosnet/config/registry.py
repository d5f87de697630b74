"""Every kernel parameter mosnet-init reads, in one frozen table.

Each :class:`Parameter` says which parser owns it (``net``:
``mosnet.config.cmdline`` → NetConfig; ``boot``: ``init.bootcfg`` →
BootConfig; ``console``: ``mosnet.config.console``, the kernel's console
level), its form (a bare flag, ``key=value`` or either) with the expected
form that error messages name, whether every occurrence counts
(repeatable) or the last valid one wins, whether it is a yes/no parameter,
and whether ``build.sh --cmdline`` may bake it. The parsers dispatch
through this table, the merge and the baked-line check read it, and tests
hold the parsers' handler tables and the README's tables to it.

Yes/no words are one set for every boolean parameter, the union of what
the parsers took before: ``1 y yes true on`` and ``0 n no false off``, in
any case. ``mosdhcp_prefer_private`` gained ``y`` and ``n`` with it;
``mosshell`` and ``mosdebug`` took them all already, and alone mean yes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from mosnet.base.errors import ParamError
from mosnet.config.kcmdline import Param

Owner = Literal["net", "boot", "console"]
Form = Literal["flag", "value", "both"]  # bare ``key``, ``key=value``, either

BOOL_WORDS: Mapping[str, bool] = MappingProxyType(
    {"1": True, "y": True, "yes": True, "true": True, "on": True}
    | {"0": False, "n": False, "no": False, "false": False, "off": False}
)
BOOL_TEXT = "yes|no (or y|n, true|false, 1|0, on|off)"
MAX_SECONDS = 3600  # the bound of every seconds parameter
ROOT_EXPECTED = "/dev/NAME, UUID=, LABEL=, PARTUUID=[/PARTNROFF=n], PARTLABEL=, MAJ:MIN or nfs:..."
_WHOLE_SECONDS = f"whole seconds 0..{MAX_SECONDS}"
_SECONDS = f"seconds 0..{MAX_SECONDS}, e.g. 30 or 2.5"


@dataclass(frozen=True)
class Parameter:
    name: str
    owner: Owner
    form: Form
    expected: str  # the valid form, as error messages name it
    repeatable: bool = False  # every occurrence counts; else the last valid one wins
    boolean: bool = False  # a value is one of BOOL_WORDS
    bakeable: bool = True  # build.sh --cmdline may store it (the kernel never sees that line)
    # False: an occurrence of the wrong form is skipped without a word, as the
    # kernel skips it (``quiet=1``, an empty ``console=``); True: it is an error.
    strict: bool = True
    group: str | None = None  # keys of one group set one thing (ro|rw)


def _net(name: str, expected: str, *, repeatable: bool = False, boolean: bool = False) -> Parameter:
    return Parameter(name, "net", "value", expected, repeatable=repeatable, boolean=boolean)


def _boot(name: str, form: Form, expected: str, *, boolean: bool = False) -> Parameter:
    return Parameter(name, "boot", form, expected, boolean=boolean)


def _console(name: str, form: Form, expected: str, strict: bool = False) -> Parameter:
    return Parameter(name, "console", form, expected, bakeable=False, strict=strict)


_TABLE = (
    _net("mosip4", "<address>,<gateway>,<netmask>[,<device>]"),
    _net("mosip6", "<address>/<prefix>,<gateway>[,<device>]"),
    _net("mosdhcp_timeout", f"seconds, a number > 0 and <= {MAX_SECONDS}"),
    _net("mosdhcp_prefer_private", BOOL_TEXT, boolean=True),
    _net(
        "mosfirewall",
        "ssh|permissive|none[,tcp:<port>[,<port>...]][,udp:<port>...] (firewall left unconfigured)",
    ),
    _net(
        "mosnat",
        "snat|none|<iface>[,<ext-port>:<ipv4>:<port>/tcp|udp...] (NAT left unconfigured)",
    ),
    _net("mosbridge", "ovs|linux|auto"),
    _net("BOOTIF", "01-aa-bb-cc-dd-ee-ff or aa-bb-cc-dd-ee-ff"),
    Parameter(
        "bond",
        "net",
        "both",
        "<name>[:<slave>,<slave>...[:<option>=<value>,...[:<mtu>]]]",
        repeatable=True,
    ),
    _net("vlan", "<name>:<parent> with the id in the name: vlan5, eth0.5", repeatable=True),
    Parameter("rd.neednet", "net", "both", f"a bare flag or {BOOL_TEXT}", boolean=True),
    _net("rd.peerdns", BOOL_TEXT, boolean=True),
    _net("rd.bootif", BOOL_TEXT, boolean=True),
    _net("ifname", "<name>:<mac>", repeatable=True),
    _net("nameserver", "an IPv4 or IPv6 address", repeatable=True),
    _net(
        "ip",
        "dhcp, <iface>:dhcp or <client>:[<peer>]:<gw>:<netmask>:<hostname>:<iface>:none",
        repeatable=True,
    ),
    _boot("root", "value", ROOT_EXPECTED),
    _boot("rootfstype", "value", "filesystem names like ext4 or ext4,xfs ([a-z0-9_.,-]+)"),
    _boot("rootflags", "value", "mount options, e.g. rootflags=noatime"),
    Parameter("ro", "boot", "flag", "bare 'ro' without a value", group="ro|rw"),
    Parameter("rw", "boot", "flag", "bare 'rw' without a value", group="ro|rw"),
    _boot("init", "value", "an absolute path such as /sbin/init"),
    _boot("rootwait", "both", _WHOLE_SECONDS),
    _boot("rootdelay", "value", _WHOLE_SECONDS),
    _boot("mosroot_timeout", "value", _SECONDS),
    _boot("mosshell", "both", f"a bare flag or {BOOL_TEXT}", boolean=True),
    _boot("mosdebug", "both", f"a bare flag or {BOOL_TEXT}", boolean=True),
    # Only picks mosnet's view of the console; the kernel's comes from its own line.
    Parameter(
        "console",
        "boot",
        "value",
        "a console such as ttyS0,115200n8",
        repeatable=True,
        bakeable=False,
        strict=False,
    ),
    _boot("mosinit", "value", "switchroot or chain"),
    _boot("mosroot", "value", "http://<host>/<path>.squashfs|.tar.zst"),
    _boot("mosroot_sha256", "value", "64 hex digits: the image's sha256"),
    _boot("mosroot_fetch_timeout", "value", _SECONDS),
    _boot("nfsroot", "value", "<server>:/<path>[,<options>]"),
    _console("quiet", "flag", "bare 'quiet'"),
    _console("debug", "flag", "bare 'debug'"),
    _console("ignore_loglevel", "both", "bare 'ignore_loglevel'"),
    _console("loglevel", "value", "a console log level such as 4 or 7", strict=True),
)
PARAMETERS: Mapping[str, Parameter] = MappingProxyType({p.name: p for p in _TABLE})
BAKEABLE = frozenset(p.name for p in _TABLE if p.bakeable)
REPEATABLE = frozenset(p.name for p in _TABLE if p.repeatable)


def owned_by(owner: Owner) -> frozenset[str]:
    """The names one parser reads."""
    return frozenset(p.name for p in _TABLE if p.owner == owner)


def lookup(key: str, owner: Owner) -> Parameter | None:
    """The entry of ``key`` if ``owner``'s parser reads it."""
    entry = PARAMETERS.get(key)
    return entry if entry is not None and entry.owner == owner else None


def expected(name: str) -> str:
    return PARAMETERS[name].expected


def group(key: str) -> str:
    """The setting a key belongs to; keys in one group replace each other."""
    entry = PARAMETERS.get(key)
    return entry.group if entry is not None and entry.group else key


def fits(entry: Parameter, param: Param) -> bool:
    """Does ``param`` have the entry's form? A strict entry raises ParamError instead.

    A ``key=value`` parameter needs a non-empty value, a flag must be bare.
    """
    if entry.form == "flag":
        ok = param.value is None
    else:
        ok = entry.form == "both" or bool(param.value)
    if ok or not entry.strict:
        return ok
    raise ParamError(entry.name, param.value or "", entry.expected)


def truth(name: str, value: str | None) -> bool:
    """A yes/no parameter's value; a bare flag means yes. Raises ParamError."""
    if value is None:
        return True
    word = BOOL_WORDS.get(value.lower())
    if word is None:
        raise ParamError(name, value, expected(name))
    return word
