"""The MAC NAT table as golden text, input checks and load()'s decisions.

``nfttable.render`` is compared with tests/data/golden/macnat/<case>.nft
(``UPDATE_GOLDEN=1`` rewrites them). load() and the helpers run against a
fake ``nft`` that records argv and stdin; tests/netns/test_macnat_filter.py loads
the real thing against a MAC-filtering provider.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import sys

import pytest

from mosnet.macnat import bridgenft, nfttable

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden" / "macnat"
NIC = "52:54:00:12:34:56"

CASES: dict[str, tuple[str, tuple[str, ...] | None, int]] = {
    "all_ports": ("eth0", None, nfttable.DEFAULT_TIMEOUT),
    "listed_ports": ("enp1s0", ("veth-a", "veth-b"), 60),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    uplink, ports, timeout = CASES[case]
    got = nfttable.render(uplink, NIC, ports, timeout=timeout)
    path = GOLDEN / f"{case}.nft"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()


def test_render_lowercases_the_mac_and_keeps_the_host_port_untouched() -> None:
    text = nfttable.render("eth0", "52:54:00:AB:CD:EF")
    assert "AB:CD:EF" not in text and "52:54:00:ab:cd:ef" in text
    text = nfttable.render("eth0", NIC)
    # every rewrite hangs off "ether saddr != NIC" / "ether daddr NIC"
    assert f"ether saddr != {NIC} jump egress" in text
    assert f'iifname "eth0" ether daddr {NIC} jump ingress' in text
    assert text.count("priority -200;") == 3


@pytest.mark.parametrize(
    ("uplink", "mac", "ports", "timeout"),
    [
        ("eth0", "01:00:5e:00:00:01", None, 300),  # multicast
        ("eth0", "52:54:00:12:34", None, 300),
        ("eth0", "zz:54:00:12:34:56", None, 300),
        ('eth0"; flush ruleset', NIC, None, 300),
        ("eth0", NIC, ("ok", "bad name"), 300),
        ("eth0", NIC, (), 300),
        ("eth0", NIC, None, 0),
    ],
)
def test_render_rejects_bad_input(
    uplink: str, mac: str, ports: tuple[str, ...] | None, timeout: int
) -> None:
    with pytest.raises(nfttable.MacNatError):
        nfttable.render(uplink, mac, ports, timeout=timeout)


def _fake_nft(tmp_path: pathlib.Path, fail_on: str = "", stdout: str = "") -> str:
    """An nft that logs argv+stdin as JSON lines and fails if argv contains ``fail_on``."""
    log = tmp_path / "nft.log"
    out = tmp_path / "nft.out"
    out.write_text(stdout)
    nft = tmp_path / "nft"
    nft.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "data = sys.stdin.read() if '-f' in sys.argv else ''\n"
        f"open({str(log)!r}, 'a').write(json.dumps([sys.argv[1:], data]) + '\\n')\n"
        f"sys.stdout.write(open({str(out)!r}).read())\n"
        f"sys.exit(1 if {fail_on!r} and {fail_on!r} in sys.argv else 0)\n"
    )
    nft.chmod(nft.stat().st_mode | stat.S_IXUSR)
    return str(nft)


def _calls(tmp_path: pathlib.Path) -> list[list[object]]:
    path = tmp_path / "nft.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_apply_checks_then_loads_one_atomic_script(tmp_path: pathlib.Path) -> None:
    res = bridgenft.load("eth0", NIC, nft=_fake_nft(tmp_path))
    assert res.ok and res.applied and not res.errors
    calls = _calls(tmp_path)
    assert [c[0] for c in calls] == [["-c", "-f", "-"], ["-f", "-"]]
    assert calls[0][1] == calls[1][1] == res.script
    head = "table bridge mosnet-macnat {}\ndelete table bridge mosnet-macnat\n"
    assert res.script == head + nfttable.render("eth0", NIC)


def test_apply_reports_a_rejected_script_and_loads_nothing(tmp_path: pathlib.Path) -> None:
    res = bridgenft.load("eth0", NIC, nft=_fake_nft(tmp_path, fail_on="-c"))
    assert not res.ok and not res.applied and res.script == ""
    assert "kept the old one" in res.errors[0]
    assert [c[0] for c in _calls(tmp_path)] == [["-c", "-f", "-"]]


def test_apply_never_raises(tmp_path: pathlib.Path) -> None:
    res = bridgenft.load("eth0", "not-a-mac", nft=_fake_nft(tmp_path))
    assert not res.ok and "not a unicast MAC" in res.errors[0]
    assert _calls(tmp_path) == []
    res = bridgenft.load("eth0", NIC, nft=str(tmp_path / "missing"))
    assert not res.ok and res.errors


def test_add_binding_replaces_the_element(tmp_path: pathlib.Path) -> None:
    nft = _fake_nft(tmp_path)
    assert bridgenft.add_binding("fd00:60::5", "02:AA:00:00:00:05", timeout=60, nft=nft) is None
    base = ["bridge", "mosnet-macnat", "guests6"]
    assert [c[0] for c in _calls(tmp_path)] == [
        ["delete", "element", *base, "{ fd00:60::5 }"],
        ["add", "element", *base, "{ fd00:60::5 timeout 60s : 02:aa:00:00:00:05 }"],
    ]
    assert bridgenft.add_binding("10.60.0.300", NIC, nft=nft) is not None
    assert bridgenft.add_binding("10.60.0.3", "01:00:00:00:00:01", nft=nft) is not None


def test_bindings_parses_nft_json(tmp_path: pathlib.Path) -> None:
    # nft 1.0.6 output: elements with a timeout are wrapped in {"elem": {...}}
    doc = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {
                "map": {
                    "name": "guests4",
                    "elem": [
                        [{"elem": {"val": "10.60.0.5", "expires": 299}}, "02:aa:00:00:00:05"],
                        ["10.60.0.7", "02:aa:00:00:00:07"],
                    ],
                }
            },
        ]
    }
    nft = _fake_nft(tmp_path, stdout=json.dumps(doc))
    assert bridgenft.bindings(nft=nft) == {
        "10.60.0.5": "02:aa:00:00:00:05",
        "10.60.0.7": "02:aa:00:00:00:07",
    }
    assert bridgenft.bindings(nft=_fake_nft(tmp_path, fail_on="list")) == {}
    assert bridgenft._parse_map("not json") == {}
