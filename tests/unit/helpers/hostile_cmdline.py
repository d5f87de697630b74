"""Command lines for PID 1's setup path: one valid parameter of each kind in junk.

``make_case(rng)`` builds a kernel line (and sometimes a baked line) that
holds one valid occurrence of every kind of parameter PID 1 reads, each
with a check of its effect on the parsed configuration, mixed in any order
with three kinds of noise:

* junk tokens of arbitrary bytes 0x01-0xff (no parameter PID 1 reads, no
  bare ``--``), some with balanced quotes inside, at most one with a quote
  that is never closed;
* hostile occurrences of the same keys whose whole value is invalid:
  Unicode digits, leading zeros beyond the range, overflow, bytes that are
  not UTF-8, control characters (``HOSTILE``);
* runs of the separators the kernel splits on, 0xa0 included.

Whatever the noise, every check must hold: a bad parameter costs only itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from init.cmdsetup import BootInput
from mosnet.config import kcmdline, registry
from mosnet.config.model import FirewallPreset, FirewallSpec, NatSpec, PortForward, PortRange
from tests.unit.helpers import hostile_links

Check = Callable[[BootInput, int], bool]  # (what PID 1 parsed, console level) -> ok
SEPARATORS = (b" ", b"  ", b"\t", b"\n", b"\r\n", b"\x0b", b"\x0c", b"\xa0", b" \xa0 ")
KNOWN_KEYS = frozenset({*registry.PARAMETERS, "--"})
_NO_NUL_OR_QUOTE = bytes.maketrans(b'\0"', b"''")  # /proc/cmdline has no NUL
_PLAIN = bytes.maketrans(b'\0" \t\n\v\f\r\xa0', b"''_______")  # no NUL, quote or space
_LEADS = bytes(b for b in range(0x80, 0x100) if b != 0xA0) + b"z"  # no parameter starts so
_PRINTABLE_ASCII = bytes(0x21 + b % 94 for b in range(256))
NOT_UTF8 = (b"\xff", b"\xfe", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\x80")

# Values that are wholly invalid for their key: the occurrence sets nothing.
# tests/unit/test_boot_input.py checks that each one alone is refused.
HOSTILE: dict[str, tuple[str, ...]] = {
    "mosip4": (
        "10.0.0.²,10.0.0.1,24",
        "١٠.0.0.5,10.0.0.1,24",
        "010.0.0.5,10.0.0.1,24",
        "10.0.0.5,10.0.0.1,0000000000000000000024",
        "10.0.0.5,10.0.0.1,33",
        "10.0.0.5,10.0.0.5,24",
        "10.0.0.5",
        "10.0.0.5,10.0.0.1,255.0.255.0",
    ),
    "mosip6": ("2001:db8::5/١٢٨,fe80::1", "2001:db8::5/00000129,fe80::1", "2001:db8::5,fe80::1"),
    "mosdhcp_timeout": ("²", "0", "1e9", "nan", "inf", "3601", "0000000000003601", "-1", "１"),
    "mosdhcp_prefer_private": ("ｙｅｓ", "maybe", "2"),
    "mosfirewall": ("sssh,tcp:22", "ssh\x1b[2J", "allow"),
    "mosnat": ("snat/x", "eth0/../x", "ＳＮＡＴ"),
    "mosbridge": ("ovz", "ＯＶＳ", "linux\x7f"),
    "BOOTIF": ("01-52-54-00-12-34-5", "01-5²-54-00-12-34-56", "01-01-00-00-00-00-01"),
    "ifname": ("lan0", "lan0:52:54:00:12:34", "a/b:52:54:00:12:34:56"),
    "nameserver": ("192.0.2.²", "0192.0.2.53", "1.2.3", "[2001:db8::53"),
    "ip": ("10.0.0.5:::٢٤::eth0:none", "dhcpp", "[fe80::1", "eth0:dhcp²"),
    "root": (
        "/dev/",
        "UUID=xyz",
        "PARTUUID=ab/PARTNROFF=²",
        "PARTUUID=ab/PARTNROFF=0000256",
        "8:99999999999",
        "4096:0",
        "LABEL=",
    ),  # fmt: skip
    "rootfstype": ("EXT4", "ext4;rm", "ｅｘｔ４"),
    "rootflags": ("\udcffnoatime",),
    "ro": ("x",),
    "rw": ("yes",),
    "init": ("sbin/init", "init"),
    "rootwait": ("soon", "²", "0000000003601", "99999999999999999999"),
    "rootdelay": ("-1", "1.5", "٣"),
    "mosroot_timeout": ("1e3", "nan", "²"),
    "mosshell": ("maybe", "２"),
    "mosdebug": ("maybe",),
    "console": ("\udcff",),
    "mosinit": ("chian", "ｃｈａｉｎ"),
    "mosroot": (
        "https://10.0.0.1/r.squashfs",
        "http://10.0.0.1/r.iso",
        "http://10.0.0.1:0/r.sqfs",
        "http://10.0.0.1:99999/r.sqfs",
        "http://10.0.0.1:８０/r.sqfs",
        "http://10.0.0.1:²/r.sqfs",
    ),  # fmt: skip
    "mosroot_sha256": ("a" * 63, "g" * 64, "²" * 64),
    "mosroot_fetch_timeout": ("１", "1e3", "99999"),
    "nfsroot": ("10.0.0.1", "10.0.0.1:srv", "[zz::1]:/srv"),
    "loglevel": ("x", "²", "99999999999999"),
} | hostile_links.HOSTILE


@dataclass(frozen=True)
class Case:
    kernel: bytes
    baked: bytes | None
    checks: tuple[tuple[str, Check], ...]
    hostile: int  # how many hostile occurrences went in (each must be reported)


def _mac(r: random.Random) -> str:
    first = r.randrange(256) & 0xFC  # unicast, globally administered or not
    return ":".join(f"{b:02x}" for b in [first or 2, *(r.randrange(256) for _ in range(5))])


def _dev(r: random.Random) -> str:
    return r.choice(["eth0", "enp3s0f1", "bond0", "lan-1", "e" * 15])


def _ip4(r: random.Random) -> tuple[str, Check]:
    a, b, h = r.randrange(256), r.randrange(256), r.randrange(2, 254)
    dev = r.choice([None, _dev(r)])
    tok = f"mosip4=10.{a}.{b}.{h},10.{a}.{b}.1,255.255.255.0" + (f",{dev}" if dev else "")
    want = (IPv4Address(f"10.{a}.{b}.{h}"), IPv4Address(f"10.{a}.{b}.1"), 24, dev)

    def check(i: BootInput, _: int) -> bool:
        s = i.net.ip4
        return s is not None and (s.address, s.gateway, s.prefixlen, s.device) == want

    return tok, check


def _ip6(r: random.Random) -> tuple[str, Check]:
    x, h = r.randrange(1 << 16), r.randrange(2, 1 << 16)
    addr = IPv6Address(f"2001:db8:{x:x}::{h:x}")
    tok = f"mosip6={addr}/64,fe80::1"

    def check(i: BootInput, _: int) -> bool:
        s = i.net.ip6
        return s is not None and (s.address, s.prefixlen, str(s.gateway)) == (addr, 64, "fe80::1")

    return tok, check


def _timeout(r: random.Random) -> tuple[str, Check]:
    whole = r.randrange(1, 3600)
    text = r.choice([str(whole), f"{whole}.5", f"0{whole}" if whole < 1000 else str(whole)])
    return f"mosdhcp_timeout={text}", lambda i, _: i.net.dhcp.timeout == float(text)


def _prefer(r: random.Random) -> tuple[str, Check]:
    word, value = r.choice([("yes", True), ("No", False), ("1", True), ("off", False)])
    return f"mosdhcp_prefer_private={word}", lambda i, _: i.net.dhcp.prefer_private is value


def _firewall(r: random.Random) -> tuple[str, Check]:
    presets: list[FirewallPreset] = ["ssh", "permissive", "none"]
    preset = r.choice(presets)
    lo = r.randrange(1, 60000)
    tok = f"mosfirewall={preset},tcp:{lo},{lo + 1}-{lo + 5},udp:53"
    want = FirewallSpec(
        preset, (PortRange(lo, lo), PortRange(lo + 1, lo + 5)), (PortRange(53, 53),)
    )
    return tok, lambda i, _: i.net.firewall == want


def _nat(r: random.Random) -> tuple[str, Check]:
    port = r.randrange(1, 65536)
    tok = f"mosnat=snat,{port}:10.0.0.2:80/tcp"
    want = NatSpec("snat", None, (PortForward(port, IPv4Address("10.0.0.2"), 80, "tcp"),))
    return tok, lambda i, _: i.net.nat == want


def _bridge(r: random.Random) -> tuple[str, Check]:
    kind = r.choice(["ovs", "linux", "auto"])
    return (
        f"mosbridge={kind.upper() if r.random() < 0.2 else kind}",
        lambda i, _: i.net.bridge == kind,
    )


def _bootif(r: random.Random) -> tuple[str, Check]:
    mac = _mac(r)
    return f"BOOTIF=01-{mac.replace(':', '-')}", lambda i, _: i.net.bootif == mac


def _ifname(r: random.Random) -> tuple[str, Check]:
    mac, name = _mac(r), r.choice(["lan0", "wan1", "uplink"])
    return f"ifname={name}:{mac}", lambda i, _: i.net.ifnames == ((name, mac),)


def _nameserver(r: random.Random) -> tuple[str, Check]:
    addr = IPv4Address(f"192.0.2.{r.randrange(1, 255)}")
    return f"nameserver={addr}", lambda i, _: i.net.nameservers == (addr,)


def _ip(r: random.Random) -> tuple[str, Check]:
    dev = _dev(r)
    return f"ip={dev}:dhcp", lambda i, _: i.net.dhcp.devices == (dev,)


def _root(r: random.Random) -> tuple[str, Check]:
    kind = r.randrange(6)
    if kind == 0:
        return "root=/dev/nfs", lambda i, _: i.boot.root.kind == "nfs"
    u = r.randbytes(4).hex()
    text, want = [
        (f"root=/dev/vd{u[0] if u[0].isalpha() else 'a'}1", None),
        (f"root=UUID={u.upper()}-1234", ("uuid", f"{u}-1234", 0)),
        (f"root=PARTUUID={u}-02/PARTNROFF=-1", ("partuuid", f"{u}-02", -1)),
        (f"root=LABEL=root-{u}", ("label", f"root-{u}", 0)),
        (f"root={int(u[:3], 16) % 4096}:{int(u[3:], 16) % (1 << 20)}", None),
    ][kind - 1]
    value = text.partition("=")[2]

    def check(i: BootInput, _: int) -> bool:
        got = i.boot.root
        if want is None:
            return str(got) == value.lstrip("0") or got.value == value
        return (got.kind, got.value, got.partnroff) == want

    return text, check


def _nfsroot(r: random.Random) -> tuple[str, Check]:
    path = f"/srv/{r.randrange(100)}"
    value = f"10.1.2.3:{path},vers=3,tcp"

    def check(i: BootInput, _: int) -> bool:
        if i.boot.root.kind != "nfs":
            return i.boot.nfsroot == value
        nfs = i.boot.nfs
        return nfs is not None and (nfs.server, nfs.path, nfs.options) == (
            "10.1.2.3",
            path,
            ("vers=3", "tcp"),
        )

    return f"nfsroot={value}", check


def _flag(field: str, words: tuple[str, ...]) -> Callable[[random.Random], tuple[str, Check]]:
    def make(r: random.Random) -> tuple[str, Check]:
        word = r.choice(words)
        return word, lambda i, _: getattr(i.boot, field) is True

    return make


def _readonly(r: random.Random) -> tuple[str, Check]:
    word = r.choice(["ro", "rw"])
    return word, lambda i, _: i.boot.readonly is (word == "ro")


def _simple(
    key: str, values: tuple[str, ...], field: str, convert: Callable[[str], object] = str
) -> Callable[[random.Random], tuple[str, Check]]:
    def make(r: random.Random) -> tuple[str, Check]:
        value = r.choice(values)
        return f"{key}={value}", lambda i, _: getattr(i.boot, field) == convert(value)

    return make


def _rootwait(r: random.Random) -> tuple[str, Check]:
    seconds = r.choice([None, 0, 7, 3600])
    if seconds is None:
        return "rootwait", lambda i, _: i.boot.rootwait and i.boot.rootwait_seconds is None
    return f"rootwait={seconds:03d}", lambda i, _: i.boot.rootwait_seconds == seconds


def _console(r: random.Random) -> tuple[str, Check]:
    value = r.choice(["ttyS0,115200n8", "tty0", "ttyS1"])
    return f"console={value}", lambda i, _: i.boot.consoles == (value,)


def _netroot(r: random.Random) -> list[tuple[str, Check]]:
    port = r.randrange(1, 65536)
    url = f"http://10.9.8.7:{port}/img/root-{r.randrange(1000)}.squashfs"
    digest = r.randbytes(32).hex()
    digest = digest.upper() if r.random() < 0.3 else digest
    timeout = r.randrange(1, 3601)

    def netroot(i: BootInput) -> tuple[str, str, float] | None:
        n = i.boot.netroot
        return None if n is None else (str(n.url), n.sha256, n.fetch_timeout)

    want_url = url.replace(":80/", "/") if port == 80 else url
    return [
        (f"mosroot={url}", lambda i, _: (netroot(i) or ("",))[0] == want_url),
        (f"mosroot_sha256={digest}", lambda i, _: (netroot(i) or ("", ""))[1] == digest.lower()),
        (
            f"mosroot_fetch_timeout={timeout}",
            lambda i, _: (netroot(i) or ("", "", 0))[2] == timeout,
        ),
    ]


def _console_level(r: random.Random) -> tuple[str, Check] | None:
    choice = r.randrange(3)
    if choice == 0:
        return None
    if choice == 1:
        return "quiet", lambda _, level: level == 4
    n = r.randrange(16)
    return f"loglevel={n}", lambda _, level: level == n


KINDS: tuple[Callable[[random.Random], tuple[str, Check]], ...] = (
    _ip4, _ip6, _timeout, _prefer, _firewall, _nat, _bridge, _bootif, _ifname, _nameserver,
    _ip, _root, _nfsroot, _readonly, _rootwait, _console,
    _flag("mosshell", ("mosshell", "mosshell=yes", "mosshell=1")),
    _flag("mosdebug", ("mosdebug", "mosdebug=on")),
    _simple("rootfstype", ("ext4", "xfs", "ext4,btrfs"), "rootfstype"),
    _simple("rootflags", ("noatime", "data=ordered,noatime", "subvol=@"), "rootflags"),
    _simple("init", ("/sbin/init", "/lib/systemd/systemd", "/bin/sh"), "init"),
    _simple("rootdelay", ("0", "5", "3600"), "rootdelay", int),
    _simple("mosroot_timeout", ("0.5", "30", "3600"), "mosroot_timeout", float),
    _simple("mosinit", ("chain", "switchroot"), "mosinit"),
    *hostile_links.KINDS,
)  # fmt: skip
REPEATABLE_KEYS = registry.REPEATABLE
BAKEABLE_KEYS = registry.BAKEABLE


def _junk(r: random.Random) -> bytes:
    """Arbitrary bytes in pieces the kernel splits apart; each piece starts with a
    byte no parameter name starts with (>= 0x80, or ``z``), so none names a
    parameter PID 1 reads or is a bare ``--``. Some end in a closed quote."""
    pieces = [
        bytes([r.choice(_LEADS)]) + r.randbytes(r.randrange(0, 20)).translate(_PLAIN)
        for _ in range(r.randrange(1, 4))
    ]
    data = r.choice(SEPARATORS).join(pieces)
    if r.random() < 0.15:  # a quoted stretch: the spaces inside do not split
        data += b'"' + r.randbytes(r.randrange(0, 20)).translate(_NO_NUL_OR_QUOTE) + b'"x'
    return data


def _hostile(r: random.Random, key: str) -> bytes:
    """``key=<value>`` that its parser refuses as a whole."""
    choices = HOSTILE.get(key, ())
    if choices and r.random() < 0.6:
        return kcmdline.to_bytes(f"{key}={r.choice(choices)}")
    body = r.randbytes(r.randrange(0, 12)).translate(_PRINTABLE_ASCII).replace(b'"', b"")
    cut = r.randrange(len(body) + 1)
    return key.encode() + b"=" + body[:cut] + r.choice(NOT_UTF8) + body[cut:]


def _quoted(r: random.Random, token: str) -> bytes:
    raw = kcmdline.to_bytes(token)
    key, sep, value = raw.partition(b"=")
    roll = r.random()
    if roll < 0.1:
        return b'"' + raw + b'"'
    if roll < 0.2 and sep:
        return key + b'="' + value + b'"'
    return raw


def make_case(r: random.Random) -> Case:
    valid = [kind(r) for kind in KINDS] + _netroot(r)
    level = _console_level(r)
    if level is not None:
        valid.append(level)
    checks = tuple((tok.partition("=")[0], check) for tok, check in valid)
    baked: list[str] = []
    kernel: list[bytes] = []
    for tok, _ in valid:
        key = tok.partition("=")[0]
        if key in BAKEABLE_KEYS and key not in REPEATABLE_KEYS and r.random() < 0.25:
            baked.append(tok)  # a baked default that the kernel line's junk must not lose
        else:
            kernel.append(_quoted(r, tok))
    keys = [k for k in KNOWN_KEYS if k not in ("--", "quiet", "debug", "ignore_loglevel")]
    hostile = [_hostile(r, r.choice(keys)) for _ in range(r.randrange(0, 9))]
    noise = [_junk(r) for _ in range(r.randrange(0, 9))]
    tokens = kernel + hostile + noise
    r.shuffle(tokens)
    if r.random() < 0.2:  # one stray quote, after every quoted stretch
        last_quote = max((n for n, t in enumerate(tokens) if b'"' in t), default=-1)
        tokens.insert(
            r.randrange(last_quote + 1, len(tokens) + 1), b'xx"' + _junk(r).replace(b'"', b"")
        )
    line = b"".join(t + r.choice(SEPARATORS) for t in tokens)
    baked_file = ("# baked\n" + "\n".join(baked) + "\n").encode() if baked else None
    return Case(line, baked_file, checks, len(hostile))
