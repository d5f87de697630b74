"""The one resolv.conf writer: IPv4 and IPv6 merged, every target, never raising."""

from __future__ import annotations

import pathlib
import threading

from mosnet.state.resolvconf import DnsInfo, ResolvConf

V4 = DnsInfo(("10.0.0.53", "10.0.0.54"), ("lan.example",), "mosnet DHCPv4 lease from 10.0.0.1")
V6 = DnsInfo(("fd00::53",), ("v6.example",), "mosnet ipv6 mos (slaac)")


def test_both_families_merged_into_every_target(tmp_path: pathlib.Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    owner = ResolvConf([str(a), str(b)])
    assert owner.set_v4(V4)
    assert owner.set_v6(V6)
    text = a.read_text()
    assert text == b.read_text()
    assert text.splitlines() == [
        "# mosnet DHCPv4 lease from 10.0.0.1; mosnet ipv6 mos (slaac)",
        "nameserver 10.0.0.53",  # the first of each family, then the rest
        "nameserver fd00::53",
        "nameserver 10.0.0.54",
        "search lan.example v6.example",
    ]


def test_either_family_alone_and_nothing_without_servers(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "resolv.conf"
    owner = ResolvConf([str(path)])
    assert not owner.set_v6(DnsInfo())  # nobody knows a server: no file
    assert not path.exists()
    assert owner.set_v6(V6)
    assert "nameserver fd00::53" in path.read_text() and "10.0.0" not in path.read_text()
    assert owner.set_v4(V4) and "fd00::53" in path.read_text()
    assert owner.set_v6(DnsInfo())  # IPv6 lost its servers: IPv4's stay
    assert "fd00::53" not in path.read_text() and "10.0.0.53" in path.read_text()


def test_a_new_target_gets_the_merged_file_at_once(tmp_path: pathlib.Path) -> None:
    first, root = tmp_path / "run.conf", tmp_path / "sysroot.conf"
    owner = ResolvConf([str(first)], v4=V4, v6=V6)
    assert owner.add_target(str(root))
    assert root.read_text() == owner.text() and not first.exists()  # only the new one
    assert owner.write() and first.read_text() == root.read_text()
    assert owner.targets == [str(first), str(root)]
    assert owner.add_target(str(root)) and owner.targets == [str(first), str(root)]


def test_retarget_keeps_the_sources(tmp_path: pathlib.Path) -> None:
    owner = ResolvConf(["/nonexistent/x"], v4=V4, v6=V6)
    moved = owner.retarget([str(tmp_path / "r")])
    assert moved.v4 == V4 and moved.v6 == V6 and moved.write()
    assert (tmp_path / "r").read_text() == owner.text()


def test_unwritable_target_is_logged_and_the_others_written(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "good"
    owner = ResolvConf([str(tmp_path / "missing" / "dir" / "resolv.conf"), str(good)])
    assert owner.set_v4(V4) is False
    assert "nameserver 10.0.0.53" in good.read_text()


def test_bad_search_domain_writes_nothing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "resolv.conf"
    owner = ResolvConf([str(path)])
    assert owner.set_v4(DnsInfo(("10.0.0.53",), ("bad domain",), "x")) is False
    assert not path.exists()


def test_concurrent_updates_never_lose_a_family(tmp_path: pathlib.Path) -> None:
    """The daemon's DHCPv4 and IPv6 threads share one owner."""
    path = tmp_path / "resolv.conf"
    owner = ResolvConf([str(path)])

    def hammer(set_: str, info: DnsInfo) -> None:
        for _ in range(200):
            getattr(owner, set_)(info)

    threads = [threading.Thread(target=hammer, args=a) for a in (("set_v4", V4), ("set_v6", V6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = path.read_text()
    assert "nameserver 10.0.0.53" in text and "nameserver fd00::53" in text
    assert list(tmp_path.iterdir()) == [path]  # no tmp file left behind
