"""build.sh --cmdline: the line is checked by the boot-time parsers and stored."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from initramfs import baked
from initramfs.build import BuildError, add_cmdline, build, config_from_args
from initramfs.tree import File, Tree
from mosnet.config import cmdmerge
from tests.unit.test_build import ARGS, CPIO, fake_inputs, needs_tools

GOOD = (
    "mosip4=136.243.10.20,136.243.10.1,255.255.255.255 "
    "mosip6=2a01:4f8:c17:1234::2/64,fe80::1 mosfirewall=ssh nameserver=185.12.64.1 "
    "nameserver=2a01:4ff:ff00::add:1 rw"
)


def test_a_good_line_is_stored_canonically_and_reads_back() -> None:
    tree = Tree()
    add_cmdline(tree, GOOD + "   -- single")
    entry = tree.get(cmdmerge.BAKED_PATH)
    assert isinstance(entry, File) and entry.mode == 0o644
    assert entry.data.startswith(b"# mosnet-init: default kernel parameters")
    assert cmdmerge.parse_file(entry.data) == GOOD + " -- single"


def test_no_line_no_file() -> None:
    tree = Tree()
    add_cmdline(tree, None)
    add_cmdline(tree, "")
    assert tree.get(cmdmerge.BAKED_PATH) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("mosip4=10.0.0.5,10.0.0.1", "mosip4: bad value '10.0.0.5,10.0.0.1', expected <address>"),
        ("mosfirewall=ssh,tcp:70000", "mosfirewall: bad value '70000'"),
        ("mosfirewal=ssh", "'mosfirewal' is not a parameter mosnet-init reads"),
        ("console=ttyS0", "'console' is not a parameter mosnet-init reads"),
        ("mostest.wait=5", "'mostest.wait' is not a parameter"),
        ("root=/dev/", "root: bad value '/dev/'"),
        ("rootwait=soon", "rootwait: bad value 'soon'"),
        ("mosshell=maybe", "mosshell: bad value 'maybe'"),
        ("mosfirewall=ssh mosfirewall=none", "mosfirewall given twice"),
        ("ro rw", "both ro and rw"),
        ("mosip4=", "mosip4: bad value ''"),
        ("a\nb", "printable UTF-8 text only, got 'a\\x0ab'"),
        ("mosfirewall=ssh\udcff", "printable UTF-8 text only"),
        ('mosshell rootflags="noatime', "unclosed quote"),
        ("mosshell " * 600, "one line of at most"),
    ],
)
def test_a_bad_line_fails_the_build_with_the_parser_message(line: str, message: str) -> None:
    with pytest.raises(BuildError, match="--cmdline: ") as exc:
        add_cmdline(Tree(), line)
    assert message in str(exc.value)


def test_repeatable_parameters_may_repeat() -> None:
    line, _ = baked.check(
        "nameserver=10.0.0.1 nameserver=10.0.0.2 ip=dhcp ifname=up0:52:54:00:12:34:56"
    )
    assert line.count("nameserver=") == 2


def test_the_command_checks_and_prints_the_line_or_fails() -> None:
    line = "mosfirewall=ssh  mosnat=none,80:10.0.0.2:80/tcp"
    ok = subprocess.run(
        [sys.executable, "-m", "initramfs", "cmdline", line], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        "mosfirewall=ssh mosnat=none,80:10.0.0.2:80/tcp",
        "note: mosnat=none: port forwards ignored",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "initramfs", "cmdline", "mosbridge=ovz"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "initramfs: error: --cmdline: mosbridge: bad value 'ovz', expected ovs|linux|auto" in (
        bad.stderr
    )


@needs_tools
def test_the_whole_build_carries_the_line_or_stops(tmp_path: Path) -> None:
    cfg = replace(fake_inputs(tmp_path, "c.img", "none"), cmdline=GOOD)
    build(cfg)
    assert CPIO is not None
    subprocess.run(
        [CPIO, "-i", "-d", "--quiet", "--no-absolute-filenames", "etc/mosnet/cmdline"],
        input=cfg.out.read_bytes(), cwd=tmp_path, check=True,
    )  # fmt: skip
    assert cmdmerge.parse_file((tmp_path / "etc/mosnet/cmdline").read_bytes()) == GOOD
    bad = replace(cfg, out=tmp_path / "bad.img", cmdline="mosip4=10.0.0.5")
    with pytest.raises(BuildError, match="mosip4: bad value '10.0.0.5'"):
        build(bad)
    assert not bad.out.exists()
    args = config_from_args([*ARGS, "--cmdline", "mosfirewall=ssh"])
    assert args.cmdline == "mosfirewall=ssh" and config_from_args(ARGS).cmdline is None
