from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from init import bootcfg
from init.bootcfg import BootConfig, RootSpec
from mosnet.base.errors import ParamError


def ok(text: str) -> BootConfig:
    cfg, errors = bootcfg.parse(text)
    assert errors == ()
    return cfg


def one_error(text: str) -> tuple[BootConfig, ParamError]:
    cfg, errors = bootcfg.parse(text)
    assert len(errors) == 1, errors
    return cfg, errors[0]


def test_defaults() -> None:
    cfg = ok("quiet splash panic=10 foo=bar")
    assert cfg == BootConfig()
    assert cfg.root.kind == "none" and not cfg.root.supported
    assert cfg.readonly is True
    assert cfg.init_candidates == ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
    assert cfg.root_timeout == 30.0
    assert cfg.primary_console is None and cfg.console_device is None


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("/dev/sda1", RootSpec("path", "/dev/sda1")),
        ("/dev/disk/by-uuid/x", RootSpec("path", "/dev/disk/by-uuid/x")),
        ("UUID=3F2A-11BC", RootSpec("uuid", "3f2a-11bc")),
        ("uuid=0a1b2c3d-0000-4000-8000-0123456789ab",
         RootSpec("uuid", "0a1b2c3d-0000-4000-8000-0123456789ab")),
        ("LABEL=rootfs", RootSpec("label", "rootfs")),
        ("PARTUUID=ABCDEF01-02", RootSpec("partuuid", "abcdef01-02")),
        ("PARTUUID=abcdef01-02/PARTNROFF=1", RootSpec("partuuid", "abcdef01-02", 1)),
        ("PARTUUID=abcdef01-02/PARTNROFF=-1", RootSpec("partuuid", "abcdef01-02", -1)),
        ("PARTLABEL=system", RootSpec("partlabel", "system")),
        ("8:1", RootSpec("devnum", "8:1")),
        ("/dev/nfs", RootSpec("nfs", "")),
        ("nfs:10.0.0.1:/srv/root", RootSpec("nfs", "10.0.0.1:/srv/root")),
    ],
)  # fmt: skip
def test_root_forms(value: str, spec: RootSpec) -> None:
    assert ok(f"root={value}").root == spec


def test_root_label_with_spaces_quoted() -> None:
    assert ok('root="LABEL=my root"').root == RootSpec("label", "my root")


def test_nfs_recorded_but_unsupported() -> None:
    spec = ok("root=/dev/nfs").root
    assert spec.kind == "nfs" and not spec.supported


@pytest.mark.parametrize(
    ("text", "param", "token", "expected_part"),
    [
        ("root=", "root", "", "UUID="),
        ("root", "root", "", "UUID="),
        ("root=sda1", "root", "sda1", "/dev/NAME"),
        ("root=/dev/", "root", "/dev/", "/dev/NAME"),
        ("root=UUID=", "root", "UUID=", "hex"),
        ("root=UUID=xyz", "root", "UUID=xyz", "hex"),
        ("root=LABEL=", "root", "LABEL=", "LABEL="),
        ("root=PARTUUID=ab/PARTNROFF=x", "root", "PARTUUID=ab/PARTNROFF=x", "PARTNROFF=<integer"),
        ("root=PARTUUID=ab/FOO=1", "root", "PARTUUID=ab/FOO=1", "PARTUUID="),
        ("root=UUID=ab/PARTNROFF=1", "root", "UUID=ab/PARTNROFF=1", "UUID="),
        ("rootfstype=EXT4", "rootfstype", "EXT4", "[a-z0-9_.,-]+"),
        ("rootfstype=", "rootfstype", "", "[a-z0-9_.,-]+"),
        ("rootflags=", "rootflags", "", "mount options"),
        ("ro=1", "ro", "1", "bare 'ro'"),
        ("rw=yes", "rw", "yes", "bare 'rw'"),
        ("init=sbin/init", "init", "sbin/init", "absolute path"),
        ("init=", "init", "", "absolute path"),
        ("rootwait=-1", "rootwait", "-1", "whole seconds"),
        ("rootwait=abc", "rootwait", "abc", "whole seconds"),
        ("rootdelay=3601", "rootdelay", "3601", "0..3600"),
        ("rootdelay", "rootdelay", "", "whole seconds"),
        ("rootdelay=1.5", "rootdelay", "1.5", "whole seconds"),
        ("mosroot_timeout=-3", "mosroot_timeout", "-3", "seconds 0..3600"),
        ("mosroot_timeout=1e3", "mosroot_timeout", "1e3", "seconds"),
        ("mosroot_timeout=9999", "mosroot_timeout", "9999", "seconds"),
        ("mosshell=maybe", "mosshell", "maybe", "yes|no"),
        ("mosdebug=2", "mosdebug", "2", "yes|no"),
        ("rootdelay=" + "9" * 5000, "rootdelay", "9" * 5000, "whole seconds"),
    ],
)
def test_malformed(text: str, param: str, token: str, expected_part: str) -> None:
    cfg, err = one_error(text)
    assert (err.param, err.token) == (param, token)
    assert expected_part in err.expected
    assert param in str(err)
    # The field keeps its default.
    assert cfg == BootConfig()


def test_bad_value_keeps_previous_good_one_and_rest_applies() -> None:
    cfg, err = one_error("root=/dev/vda1 root=bogus rw mosdebug")
    assert cfg.root == RootSpec("path", "/dev/vda1")
    assert cfg.readonly is False and cfg.mosdebug is True
    assert err.param == "root"
    cfg, errors = bootcfg.parse("root=bogus rootfstype=Bad! mosdebug")
    assert [e.param for e in errors] == ["root", "rootfstype"]
    assert cfg.root.kind == "none" and cfg.mosdebug


def test_ro_rw_last_wins() -> None:
    assert ok("ro rw").readonly is False
    assert ok("rw ro").readonly is True
    assert ok("rw").readonly is False


def test_fstype_list_and_flags() -> None:
    cfg = ok("rootfstype=ext4,xfs rootflags=noatime,data=ordered")
    assert cfg.fstypes == ("ext4", "xfs")
    assert cfg.rootflags == "noatime,data=ordered"


def test_init_and_args() -> None:
    cfg = ok("init=/usr/lib/systemd/systemd quiet -- single --foo root=/dev/x")
    assert cfg.init == "/usr/lib/systemd/systemd"
    assert cfg.init_candidates == ("/usr/lib/systemd/systemd",)
    assert cfg.init_args == ("single", "--foo", "root=/dev/x")
    assert cfg.root.kind == "none"  # after "--" belongs to init


def test_timeouts() -> None:
    assert ok("rootwait").root_timeout == 300.0
    cfg = ok("rootwait=12")
    assert (cfg.rootwait, cfg.rootwait_seconds, cfg.root_timeout) == (True, 12, 12.0)
    assert ok("rootwait=12 rootwait").rootwait_seconds is None
    assert ok("rootwait mosroot_timeout=2.5").root_timeout == 2.5
    assert ok("mosroot_timeout=0").root_timeout == 0.0
    assert ok("rootdelay=5").rootdelay == 5


def test_bools() -> None:
    assert ok("mosshell").mosshell is True
    assert ok("mosshell mosshell=0").mosshell is False
    assert ok("mosdebug=yes").mosdebug is True
    assert ok("mosdebug=OFF").mosdebug is False


def test_consoles() -> None:
    cfg = ok("console=tty0 console= console=ttyS0,115200n8")
    assert cfg.consoles == ("tty0", "ttyS0,115200n8")
    assert cfg.primary_console == "ttyS0,115200n8"
    assert cfg.console_device == "/dev/ttyS0"
    assert ok("console=uart8250,io,0x3f8").console_device == "/dev/uart8250"
    assert ok("console=../x").console_device is None


def test_root_spec_str() -> None:
    assert str(RootSpec("partuuid", "ab-01", 2)) == "PARTUUID=ab-01/PARTNROFF=2"
    assert str(RootSpec("uuid", "x")) == "UUID=x"
    assert str(RootSpec("path", "/dev/sda")) == "/dev/sda"


def test_log_errors(caplog: pytest.LogCaptureFixture) -> None:
    _, errors = bootcfg.parse("rootdelay=x")
    logger = logging.getLogger("test.bootcfg")
    with caplog.at_level(logging.WARNING, logger="test.bootcfg"):
        bootcfg.log_errors(errors, logger)
    assert "rootdelay" in caplog.text and "'x'" in caplog.text


_KEYS = sorted(bootcfg.HANDLERS) + ["foo", "--", ""]


@st.composite
def cmdlines(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_KEYS),
                st.sampled_from(["", "=", " ", '="', "=/dev/", "=UUID=", "=PARTUUID="]),
                st.text(max_size=20),
            ),
            max_size=8,
        )
    )
    return " ".join(k + sep + v for k, sep, v in parts)


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    cfg, errors = bootcfg.parse(text)
    assert isinstance(cfg, BootConfig)
    assert all(isinstance(e, ParamError) for e in errors)


@given(cmdlines())
def test_structured_garbage_never_raises(text: str) -> None:
    cfg, errors = bootcfg.parse(text)
    assert cfg.root.kind in bootcfg.ROOT_KINDS
    assert 0 <= cfg.root_timeout <= bootcfg.MAX_SECONDS
    assert all(isinstance(e, ParamError) for e in errors)


def test_mosinit_chain_and_bad_values() -> None:
    assert BootConfig().mosinit == "switchroot" and not BootConfig().chain
    assert ok("mosinit=chain").chain
    assert ok("mosinit=CHAIN mosinit=switchroot").mosinit == "switchroot"
    cfg, err = one_error("mosinit=chian root=/dev/vda")
    assert cfg.mosinit == "switchroot" and cfg.root.value == "/dev/vda"  # the rest applies
    assert (err.param, err.token) == ("mosinit", "chian")
    assert "switchroot or chain" in str(err)
    _, err = one_error("mosinit")
    assert err.param == "mosinit"
