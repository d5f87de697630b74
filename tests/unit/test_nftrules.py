"""The nft scripts mosnet renders, as golden text, and apply()'s decisions.

Each case parses a kernel command line and compares ``nftrules.render`` with
tests/data/golden/nft/<case>.nft. ``UPDATE_GOLDEN=1`` rewrites the files.
apply() runs against a fake ``nft`` that records its argv and stdin, so no
root is needed here; tests/netns/test_firewall.py loads the real thing.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import sys

import pytest

from mosnet.config.cmdline import parse
from mosnet.nft import firewall, nftrules

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden" / "nft"
FWD2 = "8080:192.168.1.100:80/tcp,53:192.168.1.53:53/udp"

# case -> (kernel command line, uplink handed to render)
CASES: dict[str, tuple[str, str | None]] = {
    "fw_ssh": ("mosfirewall=ssh", None),
    "fw_permissive": ("mosfirewall=permissive", None),
    "fw_none": ("mosfirewall=none", None),
    "fw_custom": ("mosfirewall=ssh,tcp:8080,8000-8100,udp:53,51820,60000-60010", None),
    "fw_none_custom": ("mosfirewall=none,tcp:22,80,443,8080,udp:53", None),
    "nat_snat_two_forwards": (f"mosfirewall=ssh mosnat=snat,{FWD2}", "eth0"),
    "nat_no_uplink": (f"mosnat=eth9,{FWD2}", None),
    "nat_only_masquerade": ("mosnat=eth0", "eth0"),
    "nat_none": ("mosfirewall=permissive mosnat=none", None),
}


def _render(case: str) -> str:
    cmdline, uplink = CASES[case]
    parsed = parse(cmdline)
    assert not parsed.errors, parsed.errors
    cfg = parsed.config
    head = f"# cmdline: {cmdline}\n# uplink: {uplink or '-'}\n"
    return head + nftrules.render(cfg.firewall, cfg.nat, uplink=uplink)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    path = GOLDEN / f"{case}.nft"
    text = _render(case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_no_stale_golden_files() -> None:
    names = {p.stem for p in GOLDEN.glob("*.nft") if not p.stem.startswith("list_")}
    assert names == set(CASES)


def test_render_is_deterministic_and_atomic() -> None:
    cfg = parse(f"mosfirewall=permissive,udp:53 mosnat=snat,{FWD2}").config
    a = nftrules.render(cfg.firewall, cfg.nat, uplink="eth0")
    assert a == nftrules.render(cfg.firewall, cfg.nat, uplink="eth0")
    for table in ("inet mosnet-firewall", "ip mosnet-nat"):
        # create-if-missing, delete, redefine: in this order, once each
        i, j, k = (
            a.index(s)
            for s in (f"table {table} {{}}", f"delete table {table}", f"table {table} {{\n")
        )
        assert i < j < k
    assert "flush ruleset" not in a and "podman" not in a


def test_nothing_given_renders_nothing() -> None:
    assert nftrules.render(None, None, uplink=None) == ""


def test_unsafe_uplink_refused() -> None:
    cfg = parse("mosnat=snat").config
    with pytest.raises(ValueError):
        nftrules.render(None, cfg.nat, uplink='eth0" accept')


def test_overlapping_ports_merge() -> None:
    cfg = parse("mosfirewall=ssh,tcp:20-30,25,31,100,udp:5,5").config
    text = nftrules.render(cfg.firewall, None, uplink=None)
    assert "tcp dport { 20-31, 100 } accept" in text
    assert "udp dport 5 accept" in text


def test_bad_tokens_still_yield_a_firewall() -> None:
    parsed = parse("mosfirewall=ssh,tcp:0,70000,8080,sctp:9,udp:53 mosnat=snat,1:bad:2/tcp")
    assert parsed.errors  # each bad token reported by the parser
    cfg = parsed.config
    assert cfg.firewall is not None and cfg.nat is not None
    text = nftrules.render(cfg.firewall, cfg.nat, uplink="eth0")
    assert "tcp dport { 22, 8080 } accept" in text and "udp dport 53 accept" in text
    assert "dnat to" not in text and 'oifname "eth0" masquerade' in text


# --- apply() with a fake nft ---------------------------------------------------

FAKE_NFT = """#!{py}
import json, os, sys
data = sys.stdin.read()
with open(os.environ["FAKE_NFT_LOG"], "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "stdin": data}}) + "\\n")
bad = os.environ.get("FAKE_NFT_REJECT", "")
if bad and bad in data:
    sys.stderr.write("Error: syntax error, unexpected " + bad + "\\n")
    sys.exit(1)
"""


@pytest.fixture
def fake_nft(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    nft = tmp_path / "nft"
    nft.write_text(FAKE_NFT.format(py=sys.executable))
    nft.chmod(nft.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_NFT_LOG", str(tmp_path / "nft.log"))
    (tmp_path / "proc" / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "proc" / "net" / "ipv4" / "ip_forward").write_text("0\n")
    return nft


def _calls(tmp: pathlib.Path) -> list[dict[str, object]]:
    path = tmp / "nft.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_apply_checks_then_loads_once(fake_nft: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cfg = parse(f"mosfirewall=ssh mosnat=lo,{FWD2}").config
    res = firewall.load(cfg, nft=str(fake_nft), procsys=str(tmp_path / "proc"))
    assert res.ok, res.errors
    assert res.applied == ("inet mosnet-firewall", "ip mosnet-nat")
    assert res.uplink == "lo" and res.sysctls == ("net.ipv4.ip_forward=1",)
    assert (tmp_path / "proc/net/ipv4/ip_forward").read_text() == "1\n"
    calls = _calls(tmp_path)
    assert [c["argv"] for c in calls] == [["-c", "-f", "-"], ["-f", "-"]]
    assert calls[0]["stdin"] == calls[1]["stdin"] == res.script


def test_firewall_only_leaves_forwarding_alone(
    fake_nft: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    cfg = parse("mosfirewall=ssh mosnat=none").config
    res = firewall.load(cfg, nft=str(fake_nft), procsys=str(tmp_path / "proc"))
    assert res.applied == ("inet mosnet-firewall", "deleted ip mosnet-nat")
    assert res.sysctls == () and (tmp_path / "proc/net/ipv4/ip_forward").read_text() == "0\n"


def test_unknown_uplink_logged_rest_applied(
    fake_nft: pathlib.Path, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = parse(f"mosfirewall=ssh mosnat=eth9x,{FWD2}").config
    res = firewall.load(cfg, nft=str(fake_nft), procsys=str(tmp_path / "proc"))
    assert res.applied == ("inet mosnet-firewall", "ip mosnet-nat")
    assert res.uplink is None and "masquerade" in res.script and "dnat to" in res.script
    assert any("eth9x" in e for e in res.errors)


def test_rejected_nat_keeps_the_firewall(
    fake_nft: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NFT_REJECT", "dnat to")
    cfg = parse(f"mosfirewall=ssh mosnat=lo,{FWD2}").config
    res = firewall.load(cfg, nft=str(fake_nft), procsys=str(tmp_path / "proc"))
    assert res.applied == ("inet mosnet-firewall",)
    assert "mosnet-nat" not in res.script and res.sysctls == ()
    assert any("NAT" in e and "syntax error" in e for e in res.errors)


def test_rejected_everything_loads_nothing(
    fake_nft: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NFT_REJECT", "mosnet-firewall")
    cfg = parse("mosfirewall=ssh").config
    res = firewall.load(cfg, nft=str(fake_nft), procsys=str(tmp_path / "proc"))
    assert res.applied == () and res.script == "" and not res.ok
    assert [c["argv"] for c in _calls(tmp_path)] == [["-c", "-f", "-"]]  # never loaded


def test_apply_never_raises(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> str:
        raise RuntimeError("render exploded")

    monkeypatch.setattr(nftrules, "render", boom)
    res = firewall.load(parse("mosfirewall=ssh").config, nft="/bin/true")
    assert not res.ok and "render exploded" in res.errors[0]
    res = firewall.load(parse("mosfirewall=ssh").config, nft=str(tmp_path / "missing"))
    assert not res.ok


def test_nothing_configured_runs_nothing(fake_nft: pathlib.Path, tmp_path: pathlib.Path) -> None:
    res = firewall.load(parse("").config, nft=str(fake_nft))
    assert res == firewall.FirewallResult() and _calls(tmp_path) == []
