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
from ipaddress import IPv4Address, IPv4Network

import pytest

from mosnet.base.names import bridge_mac
from mosnet.config.cmdline import parse
from mosnet.config.model import Ip4Static, NetConfig
from mosnet.dhcp4.lease import Lease
from mosnet.topology import actions
from mosnet.topology.plan import Plan, plan
from mosnet.uplink import nicfile
from mosnet.uplink.linkstack import plan_links

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
    "firewall_nat": (V4 + " mosfirewall=ssh,tcp:2222 mosnat=snat", "one_nic", "enp3s0"),
    "err_no_nics_firewall_kept": (V4 + " mosfirewall=ssh", "none", None),
    "dhcp_lease_routes": ("", "two_nics", "eno2"),
    "dhcp_lease_p2p": ("", "two_nics", "eno2"),
    # dracut's link parameters: the link stack is printed first (mosnet.uplink.linkstack)
    "lacp_vlan_dhcp": (
        "bond=bond0:eno1,eno2:mode=802.3ad,lacp_rate=fast,xmit_hash_policy=layer3+4:9000"
        " vlan=bond0.100:bond0 ip=bond0.100:dhcp mosbridge=ovs",
        "two_nics",
        "bond0.100",
    ),
    "active_backup_static_mtu": (
        "bond=bond0:eno1,eno2:mode=active-backup,primary=eno2"
        " ip=192.168.1.10::192.168.1.1:255.255.255.0:web1:bond0:none:9000",
        "two_nics",
        None,
    ),
    "ifname_rename": (V4 + ",wan0 ifname=wan0:0c:c4:7a:10:00:02", "two_nics", None),
    "bootif_dhcp_peerdns": (
        "BOOTIF=01-0c-c4-7a-10-00-02 rd.peerdns=0 ip=::::node7::dhcp:1400",
        "two_nics",
        "eno2",
    ),
}
# cases whose plan ran: the bound lease replaces the request (option 121; a /32)
ACQUIRED = 1000.0
LEASES: dict[str, Lease] = {
    "dhcp_lease_routes": Lease(
        IPv4Address("10.0.0.5"), 24, IPv4Address("10.0.0.1"), 3600.0, 1800.0, 3150.0, ACQUIRED,
        routers=(IPv4Address("10.0.0.1"),), mtu=1400,
        static_routes=(
            (IPv4Network("0.0.0.0/0"), IPv4Address("10.0.0.254")),
            (IPv4Network("192.168.7.0/24"), IPv4Address("10.0.0.7")),
            (IPv4Network("10.9.0.0/16"), IPv4Address("0.0.0.0")),
        ),
    ),
    "dhcp_lease_p2p": Lease(
        IPv4Address("136.243.10.20"), 32, IPv4Address("136.243.10.1"), 86400.0, 43200.0,
        75600.0, ACQUIRED, routers=(IPv4Address("136.243.10.1"),),
    ),
}  # fmt: skip


def _plan(case: str) -> Plan:
    """As ``mosnet plan --links`` builds it: the link stack's candidates, then the plan."""
    cmdline, links, chosen = CASES[case]
    parsed = parse(cmdline)
    assert not parsed.errors, parsed.errors
    stack = plan_links(parsed.config, nicfile.load(str(DATA / "links" / f"{links}.json")))
    return plan(parsed.config, stack.uplinks, chosen, links=stack)


def _render(case: str) -> str:
    cmdline, links, chosen = CASES[case]
    head = f"# cmdline: {cmdline or '(none)'}\n# links: {links}.json, chosen: {chosen or '-'}\n"
    the_plan = _plan(case)
    if case in LEASES:  # 600 s after the lease was acquired
        head += "# lease bound 600 s ago\n"
        the_plan = the_plan.with_lease(LEASES[case], "mos", ACQUIRED + 600.0)
    return head + the_plan.render()


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
        cmdline = CASES[case][0]
        result = _plan(case)
        assert case.startswith("err_") == (not result.ok)
        if not result.ok:
            assert result.actions == () and result.rollback == () and result.lease == ()
        # the firewall does not depend on the network: planned whatever happens to it
        assert (result.firewall is not None) == ("mosfirewall=" in cmdline)


def test_bound_lease_replaces_the_request() -> None:
    nics = nicfile.load(str(DATA / "links" / "two_nics.json"))
    requested = plan(parse("").config, nics, "eno2")
    assert [type(a) for a in requested.lease] == [actions.RequestLease]
    bound = requested.with_lease(LEASES["dhcp_lease_p2p"], "mos", ACQUIRED + 10.0)
    assert bound.actions == requested.actions and bound.rollback == requested.rollback
    address, host_route, default = bound.lease
    assert isinstance(address, actions.AddAddress) and address.lifetime == 86390
    assert isinstance(host_route, actions.AddRoute) and host_route.gateway is None
    assert isinstance(default, actions.AddRoute) and default.onlink and default.proto == "dhcp"


def test_static_built_directly_matches_ip_parameter() -> None:
    # The planner does not care where the address came from.
    nics = nicfile.load(str(DATA / "links" / "two_nics.json"))
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
    nics = nicfile.load(str(DATA / "links" / f"{links}.json"))
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
    assert bridge_mac("90:1b:0e:aa:bb:cc") == "92:1b:0e:aa:bb:cc"
    assert bridge_mac("02:00:00:00:00:01") == "00:00:00:00:00:01"


def test_links_fixture_round_trip() -> None:
    nics = nicfile.load(str(DATA / "links" / "two_nics.json"))
    assert nicfile.loads(nicfile.dumps(nics)) == nics
    with pytest.raises(nicfile.FixtureError):
        nicfile.loads('{"links": [{"name": "x"}]}')


def test_plan_module_does_not_import_pyroute2() -> None:
    code = (
        "import sys, mosnet.topology.plan, mosnet.topology.actions, mosnet.topology.bridge,"
        " mosnet.cli;"
        " sys.exit('pyroute2' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_cli_plan_prints_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from mosnet.cli import main

    links = str(DATA / "links" / "one_nic.json")
    assert main(["plan", "--cmdline", HETZNER, "--links", links, "--chosen", "enp3s0"]) == 0
    out = capsys.readouterr().out
    assert " 1. nft -f -: replace table bridge mosnet-macnat" in out
    assert " 2. ip link add br-mosnet" in out and "fe80::1 dev public" in out
    assert main(["plan", "--cmdline", V4, "--links", links]) == 1
    assert "no NIC reaches the gateway" in capsys.readouterr().out


def test_every_plan_action_has_an_executor() -> None:
    """netapply runs every action a plan's ``actions``/``rollback``/``lease`` can hold;
    the lease request and the firewall load are the network phase's own steps."""
    import typing

    from mosnet.topology import netapply

    kinds = set(typing.get_args(actions.Action))
    run_by_the_phase = {actions.RequestLease, actions.LoadFirewall}
    assert set(netapply._EXECUTORS) == kinds - run_by_the_phase
