"""Golden-text tests of the pure planner: kernel parameters + a links fixture -> plan.

Each case renders ``Plan.render()`` under a header naming its inputs and
compares it with tests/data/golden/plan/<case>.txt. ``UPDATE_GOLDEN=1``
rewrites the files; review the diff before committing.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from mosnet import actions, bridge, links_fixture
from mosnet.cmdline import parse
from mosnet.config import Ip4Static, NetConfig
from mosnet.plan import Plan, plan

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "golden" / "plan"
REPO = DATA.parents[1]

HETZNER = (
    "mosip4=136.243.10.20,136.243.10.1,255.255.255.255"
    " mosip6=2a01:4f8:c17:1234::1/128,fe80::1 nameserver=185.12.64.1"
    " nameserver=2a01:4ff:ff00::add:1"
)
V4 = "mosip4=192.168.1.10,192.168.1.1,255.255.255.0"

# case name -> (kernel command line, links fixture, NIC picked by the probe)
CASES: dict[str, tuple[str, str, str | None]] = {
    "plain_v4": (V4, "one_nic", "enp3s0"),
    "hetzner": (HETZNER, "one_nic", "enp3s0"),
    "dual_stack_device": (V4 + ",eno2 mosip6=2001:db8::10/64,2001:db8::1", "two_nics", None),
    "ip_static": (
        "ip=192.168.1.10::192.168.1.1:255.255.255.0:srv1:eno1:none:192.168.1.53",
        "two_nics",
        None,
    ),
    "bootif_two_nics": (V4 + " BOOTIF=01-0c-c4-7a-10-00-02", "two_nics", None),
    "probe_beats_bootif": (V4 + " BOOTIF=01-0c-c4-7a-10-00-02", "two_nics", "eno1"),
    "v6_only_routed_gateway": ("mosip6=2001:db8:1::5/128,2001:db8:2::1", "one_nic", "enp3s0"),
    "dhcp": ("", "two_nics", "eno2"),
    "bridge_linux_explicit": (V4 + " mosbridge=linux", "one_nic", "enp3s0"),
    # malformed or unsatisfiable: errors and no actions
    "err_device_missing": (V4 + ",eth9", "two_nics", None),
    "err_no_nic_chosen": (V4, "two_nics", None),
    "err_chosen_unknown": (V4, "two_nics", "eth7"),
    "err_bootif_no_match": (V4 + " BOOTIF=01-52-54-00-12-34-99", "two_nics", None),
    "err_devices_disagree": (
        V4 + ",eno1 mosip6=2001:db8::10/64,2001:db8::1,eno2",
        "two_nics",
        None,
    ),
    "err_no_nics": (V4, "none", None),
    "err_dhcp_no_offer": ("", "two_nics", None),
    "ovs_static": (V4 + " mosbridge=ovs", "one_nic", "enp3s0"),
    "ovs_dhcp": ("mosbridge=ovs", "two_nics", "eno2"),
}


def _render(case: str) -> str:
    cmdline, links, chosen = CASES[case]
    parsed = parse(cmdline)
    assert not parsed.errors, parsed.errors
    nics = links_fixture.load(str(DATA / "links" / f"{links}.json"))
    head = f"# cmdline: {cmdline or '(none)'}\n# links: {links}.json, chosen: {chosen or '-'}\n"
    return head + plan(parsed.config, nics, chosen).render()


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    path = GOLDEN / f"{case}.txt"
    text = _render(case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN.glob("*.txt")} == set(CASES)


def test_error_plans_have_no_actions() -> None:
    for case in CASES:
        cmdline, links, chosen = CASES[case]
        nics = links_fixture.load(str(DATA / "links" / f"{links}.json"))
        result = plan(parse(cmdline).config, nics, chosen)
        assert case.startswith("err_") == (not result.ok)
        if not result.ok:
            assert result.actions == () and result.rollback == ()


def test_static_built_directly_matches_ip_parameter() -> None:
    # The planner does not care where the address came from.
    nics = links_fixture.load(str(DATA / "links" / "two_nics.json"))
    cfg = NetConfig(
        ip4=Ip4Static(
            IPv4Address("192.168.1.10"), IPv4Address("192.168.1.1"), 24, "eno1", source="ip"
        ),
        nameservers=(IPv4Address("192.168.1.53"),),
        hostname="srv1",
    )
    assert plan(cfg, nics, None) == plan(parse(CASES["ip_static"][0]).config, nics, None)


def test_hetzner_shape() -> None:
    cmdline, links, chosen = CASES["hetzner"]
    nics = links_fixture.load(str(DATA / "links" / f"{links}.json"))
    p: Plan = plan(parse(cmdline).config, nics, chosen)
    veth = next(a for a in p.actions if isinstance(a, actions.CreateVeth))
    assert (veth.name, veth.mac) == ("public", "90:1b:0e:aa:bb:cc")
    routes = [a for a in p.actions if isinstance(a, actions.AddRoute)]
    assert [r.onlink for r in routes] == [False, True, False]
    assert all(r.dev == "public" for r in routes)
    assert all(r.dev == "enp3s0" for r in p.rollback if isinstance(r, actions.AddRoute))
    # The NIC's address is flushed before it joins the bridge and never set again.
    assert not any(isinstance(a, actions.AddAddress) and a.dev == "enp3s0" for a in p.actions)


def test_bridge_mac_differs_from_nic() -> None:
    assert bridge.bridge_mac("90:1b:0e:aa:bb:cc") == "92:1b:0e:aa:bb:cc"
    assert bridge.bridge_mac("02:00:00:00:00:01") == "00:00:00:00:00:01"


def test_links_fixture_round_trip() -> None:
    nics = links_fixture.load(str(DATA / "links" / "two_nics.json"))
    assert links_fixture.loads(links_fixture.dumps(nics)) == nics
    with pytest.raises(links_fixture.FixtureError):
        links_fixture.loads('{"links": [{"name": "x"}]}')


def test_plan_module_does_not_import_pyroute2() -> None:
    code = (
        "import sys, mosnet.plan, mosnet.actions, mosnet.bridge, mosnet.cli;"
        " sys.exit('pyroute2' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_cli_plan_prints_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from mosnet.cli import main

    links = str(DATA / "links" / "one_nic.json")
    assert main(["plan", "--cmdline", HETZNER, "--links", links, "--chosen", "enp3s0"]) == 0
    out = capsys.readouterr().out
    assert " 1. ip link add br-mosnet" in out and "fe80::1 dev public" in out
    assert main(["plan", "--cmdline", V4, "--links", links]) == 1
    assert "no NIC reaches the gateway" in capsys.readouterr().out
