"""A replacement daemon takes the lease over from the record (issue 13 §6).

``Lease.to_json`` -> ``from_json`` round trip, a damaged record refused field
by field, and ``Client.resume``: BOUND, RENEWING, REBINDING or over by the
recorded times, never a DISCOVER while the lease is valid.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from mosnet.daemon import leasekeeper
from mosnet.dhcp4 import codec, fsm
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.lease import Lease, LeaseError, from_json
from tests.unit.test_dhcp4_reverify import ADDR, SERVER, Clock, FakeTransport, bound, reply


def recorded() -> Lease:
    _, _, lease = bound()  # acquired at 1000.0, 1000 s, T1 500, T2 875
    return lease


def test_the_record_reads_back_as_the_same_lease() -> None:
    lease = recorded()
    data = json.loads(json.dumps({"ifname": "mos", **lease.to_json()}))
    assert from_json(data) == lease


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("address", "10.0.0.300"),
        ("address", 167772170),  # an int is not how we write addresses
        ("prefixlen", 33),
        ("prefixlen", True),
        ("lease_time", -5),
        ("lease_time", float("nan")),
        ("t1", 0),
        ("t2", 5000.0),  # beyond the lease
        ("server_id", None),
        ("routers", ["10.0.0.1", 7]),
        ("static_routes", [["10.1.0.0/16"]]),
        ("hostname", "bad name;rm"),
        ("mtu", 100),
        ("acquired_at", "yesterday"),
    ],
)
def test_a_damaged_record_is_refused(key: str, value: Any) -> None:
    data = recorded().to_json()
    data[key] = value
    with pytest.raises(LeaseError, match="recorded lease unusable"):
        from_json(data)


def test_a_missing_field_is_refused() -> None:
    data = recorded().to_json()
    del data["server_id"]
    with pytest.raises(LeaseError):
        from_json(data)


def client_at(t: float) -> tuple[Client, FakeTransport, Clock]:
    clock = Clock()
    clock.t = t
    tr = FakeTransport(clock)
    c = Client("mos", transport=tr, clock=clock, sleep=lambda s: None,
               config=ClientConfig(probe_count=0), carrier_probe=lambda: True)  # fmt: skip
    return c, tr, clock


def sent_now(c: Client, tr: FakeTransport) -> list[codec.Message]:
    c._run_effects(None, None, None)
    return tr.sent


def test_resume_before_t1_stays_bound_and_sends_nothing() -> None:
    c, tr, _ = client_at(1000.0 + 100)
    assert c.resume(recorded()) is fsm.State.BOUND
    assert sent_now(c, tr) == [] and c.lease == recorded()
    assert c.machine.next_deadline() == 1500.0  # T1 as recorded


def test_resume_after_t1_renews_by_unicast_from_the_address() -> None:
    c, tr, _ = client_at(1000.0 + 600)
    assert c.resume(recorded()) is fsm.State.RENEWING
    (req,) = sent_now(c, tr)
    assert req.msg_type == codec.REQUEST and req.ciaddr == ADDR and req.server_id is None


def test_resume_after_t2_rebinds_by_broadcast() -> None:
    c, tr, _ = client_at(1000.0 + 900)
    assert c.resume(recorded()) is fsm.State.REBINDING
    (req,) = sent_now(c, tr)
    assert req.msg_type == codec.REQUEST and req.ciaddr == ADDR


def test_resume_after_expiry_gives_it_up_and_discovers() -> None:
    c, tr, _ = client_at(1000.0 + 1001)
    expired: list[Lease] = []
    assert c.resume(recorded()) is fsm.State.SELECTING
    c._run_effects(None, expired.append, None)
    assert expired == [recorded()] and c.lease is None
    assert [m.msg_type for m in tr.sent] == [codec.DISCOVER]


def test_run_forever_after_resume_renews_at_t1_and_never_discovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, tr, clock = client_at(1000.0 + 10)
    c.resume(recorded())
    renewed: list[Lease] = []
    tr.inbox.clear()
    loops = iter(range(10_000))

    def stop() -> bool:  # the carrier is polled every second: ~500 loops to T1
        return next(loops) >= 2_000 or bool(renewed)

    def answer(payload: bytes, server: Any, src: Any) -> None:  # the server ACKs the renewal
        msg = codec.decode(payload)
        tr.sent.append(msg)
        tr.inbox.append(reply(msg.xid, codec.ACK))

    monkeypatch.setattr(tr, "send_unicast", answer)
    c.run_forever(lambda lease: None, lambda lease: None, stop, on_renew=renewed.append)
    assert renewed and renewed[0].address == ADDR and renewed[0].server_id == SERVER
    assert renewed[0].acquired_at >= 1500.0  # counted from the renewal, not the old record
    assert codec.DISCOVER not in [m.msg_type for m in tr.sent] and clock.t >= 1500.0


# -- the record on disk (mosnet.daemon.leasekeeper.recorded_lease) ----------------------------


def write(path: pathlib.Path, data: object) -> None:
    path.write_text(json.dumps(data))


def test_recorded_lease_reads_lease_json(tmp_path: pathlib.Path) -> None:
    lease = recorded()
    write(tmp_path / "lease-mos.json", {"ifname": "mos", **lease.to_json()})
    assert leasekeeper.recorded_lease(str(tmp_path), "mos", 1600.0) == lease
    assert leasekeeper.recorded_lease(str(tmp_path), "eth0", 1600.0) is None  # no such file


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", json.dumps({"ifname": "eth0"}), json.dumps({"ifname": "mos"})],
)
def test_an_unusable_record_is_not_taken_over(tmp_path: pathlib.Path, content: str) -> None:
    (tmp_path / "lease-mos.json").write_text(content)
    assert leasekeeper.recorded_lease(str(tmp_path), "mos", 1600.0) is None


def test_a_record_from_the_future_is_another_boots(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "lease-mos.json", {"ifname": "mos", **recorded().to_json()})
    assert leasekeeper.recorded_lease(str(tmp_path), "mos", 900.0) is None  # obtained at 1000
