"""resolv.conf rendering limits and atomic replacement (symlinks replaced, not followed)."""

from __future__ import annotations

import os
import pathlib
import stat
from ipaddress import IPv4Address

import pytest

from mosnet.state import resolvconf


def test_render_limits_and_validation() -> None:
    text = resolvconf.render(
        [IPv4Address(f"10.99.0.{i}") for i in range(1, 6)] + ["fd00::1"],
        [f"d{i}.example" for i in range(8)],
        "mosnet dhcp4\neth0",
    )
    lines = text.splitlines()
    assert lines[0] == "# mosnet dhcp4 eth0"
    assert [ln for ln in lines if ln.startswith("nameserver")] == [
        "nameserver 10.99.0.1",
        "nameserver 10.99.0.2",
        "nameserver 10.99.0.3",
    ]
    assert lines[-1] == "search " + " ".join(f"d{i}.example" for i in range(6))
    for bad in ("10.0.0.1; rm", "example.com", ""):
        with pytest.raises(resolvconf.ResolvConfError):
            resolvconf.render([bad], [], "x")
    for name in ("$(reboot)", "-o", "a\nnameserver 6.6.6.6"):
        with pytest.raises(resolvconf.ResolvConfError):
            resolvconf.render(["10.0.0.1"], [name], "x")


def test_write_atomic_replaces_symlink_not_target(tmp_path: pathlib.Path) -> None:
    stub = tmp_path / "stub-resolv.conf"
    stub.write_text("nameserver 127.0.0.53\n")
    link = tmp_path / "resolv.conf"
    link.symlink_to(stub)
    old = os.umask(0o077)
    try:
        resolvconf.write_atomic(str(link), "nameserver 10.99.0.53\n")
    finally:
        os.umask(old)
    assert not link.is_symlink() and link.read_text() == "nameserver 10.99.0.53\n"
    assert stub.read_text() == "nameserver 127.0.0.53\n"
    assert stat.S_IMODE(link.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resolv.conf", "stub-resolv.conf"]


def test_static_servers_come_first_and_peerdns_off_keeps_the_peers_out(
    tmp_path: pathlib.Path,
) -> None:
    DnsInfo, ResolvConf = resolvconf.DnsInfo, resolvconf.ResolvConf  # noqa: N806
    path = str(tmp_path / "resolv.conf")
    static = DnsInfo(("10.0.0.53",), (), "nameserver=")
    conf = ResolvConf([path], static=static, peer=False)
    conf.set_v4(DnsInfo(("10.1.0.53",), ("lab.example",), "dhcp"))
    conf.set_v6(DnsInfo(("fd00::53",), (), "ra"))
    text = pathlib.Path(path).read_text()
    assert "nameserver 10.0.0.53" in text and "10.1.0.53" not in text and "fd00::53" not in text
    assert "lab.example" not in text
    both = ResolvConf([path], static=static).retarget([path])
    both.set_v4(DnsInfo(("10.1.0.53",), (), "dhcp"))
    lines = pathlib.Path(path).read_text().splitlines()
    servers = [ln.split()[1] for ln in lines if ln.startswith("nameserver")]
    assert servers == ["10.0.0.53", "10.1.0.53"]
    assert ResolvConf([path], peer=False).retarget([path]).peer is False
