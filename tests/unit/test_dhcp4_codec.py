"""Codec and lease validation: every rule must be able to reject."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

import pytest

from mosnet.dhcp4 import codec
from mosnet.dhcp4.lease import LeaseError, from_ack, normalise_times, prefixlen_of

MAC = bytes.fromhex("020000000001")
SERVER = IPv4Address("10.99.0.1")
A = IPv4Address


def reply(
    kind: int = codec.ACK,
    *,
    xid: int = 7,
    yiaddr: str = "10.99.0.10",
    extra: tuple[tuple[int, bytes], ...] = (),
    server: bool = True,
    lease: int | None = 3600,
) -> codec.Message:
    opts: list[tuple[int, bytes]] = [
        (codec.OPT_MSG_TYPE, bytes((kind,))),
        (codec.OPT_NETMASK, A("255.255.255.0").packed),
    ]
    if server:
        opts.append((codec.OPT_SERVER_ID, SERVER.packed))
    if lease is not None:
        opts.append((codec.OPT_LEASE_TIME, struct.pack("!I", lease)))
    return codec.Message(codec.BOOTREPLY, xid, MAC, tuple(opts) + extra, yiaddr=A(yiaddr))


def wire(msg: codec.Message) -> bytearray:
    return bytearray(codec.encode(msg))


def test_round_trip_all_builders() -> None:
    msgs = [
        codec.discover(MAC, 1, secs=3, hostname="node1"),
        codec.request(MAC, 2, form="selecting", addr=A("10.0.0.5"), server_id=SERVER),
        codec.request(MAC, 3, form="init-reboot", addr=A("10.0.0.5")),
        codec.request(MAC, 4, form="renewing", addr=A("10.0.0.5")),
        codec.decline(MAC, 5, A("10.0.0.5"), SERVER),
        codec.release(MAC, 6, A("10.0.0.5"), SERVER),
        reply(extra=((codec.OPT_DOMAIN, b"x" * 600),)),  # split per RFC 3396, rejoined
    ]
    for msg in msgs:
        assert codec.decode(codec.encode(msg)) == msg


def test_request_forms_follow_rfc2131_table5() -> None:
    sel = codec.request(MAC, 1, form="selecting", addr=A("10.0.0.5"), server_id=SERVER)
    assert sel.ciaddr == codec.ZERO and sel.opt(50) and sel.opt(54)
    reboot = codec.request(MAC, 1, form="init-reboot", addr=A("10.0.0.5"))
    assert reboot.opt(50) and reboot.opt(54) is None
    for form in ("renewing", "rebinding"):
        msg = codec.request(MAC, 1, form=form, addr=A("10.0.0.5"))
        assert msg.ciaddr == A("10.0.0.5") and msg.opt(50) is None and msg.opt(54) is None
    disc = codec.discover(MAC, 1)
    assert disc.opt(61) == b"\x01" + MAC and disc.opt(57) == b"\x05\xdc"
    assert list(disc.opt(55) or b"") == list(codec.PARAM_REQUEST)


@pytest.mark.parametrize(
    "offset,value,why",
    [
        (0, 3, "bad op"),
        (1, 6, "not ethernet"),
        (2, 16, "not ethernet"),
        (236, 0x64, "cookie"),
    ],
)
def test_header_fields_rejected(offset: int, value: int, why: str) -> None:
    data = wire(reply())
    data[offset] = value
    with pytest.raises(codec.DecodeError, match=why):
        codec.decode(bytes(data))


def test_truncated_rejected() -> None:
    data = codec.encode(reply())
    with pytest.raises(codec.DecodeError, match="truncated"):
        codec.decode(data[:239])
    end = len(data.rstrip(b"\0")) - 1  # the END option
    with pytest.raises(codec.DecodeError, match="overruns|END"):
        codec.decode(data[: end - 2])
    with pytest.raises(codec.DecodeError, match="not terminated"):
        codec.decode(data[:end])


@pytest.mark.parametrize(
    "code,value",
    [
        (1, b"\xff\xff\xff"),
        (3, b"\x0a\x00\x00"),
        (3, b""),
        (6, b"\x01" * 7),
        (51, b"\0\0\1"),
        (53, b"\x05\x05"),
        (54, b"\x0a" * 5),
        (26, b"\x05"),
        (58, b""),
        (59, b"\0" * 5),
    ],
)
def test_fixed_length_options_rejected(code: int, value: bytes) -> None:
    with pytest.raises(codec.DecodeError, match=f"option {code}"):
        codec.decode(codec.encode(reply(extra=((code, value),))))


def _overloaded(ov: int, file_opts: bytes, sname_opts: bytes) -> bytes:
    data = wire(reply(extra=((codec.OPT_OVERLOAD, bytes((ov,))),)))
    data[108 : 108 + len(file_opts)] = file_opts
    data[44 : 44 + len(sname_opts)] = sname_opts
    return bytes(data)


def test_option_overload_parses_file_and_sname() -> None:
    file_opts = bytes((15, 4)) + b"corp" + b"\xff"
    sname_opts = bytes((12, 3)) + b"box" + b"\xff"
    msg = codec.decode(_overloaded(3, file_opts, sname_opts))
    assert msg.text(15) == "corp" and msg.text(12) == "box"
    only_file = codec.decode(_overloaded(1, file_opts, sname_opts))
    assert only_file.text(15) == "corp" and only_file.opt(12) is None
    with pytest.raises(codec.DecodeError, match="overrun"):
        codec.decode(_overloaded(1, bytes((15, 200)) + b"x", b""))
    with pytest.raises(codec.DecodeError, match="overload"):
        codec.decode(_overloaded(4, b"", b""))


def test_classless_routes() -> None:
    raw = bytes([0, 10, 0, 0, 1, 24, 192, 168, 5, 10, 0, 0, 2, 32, 1, 2, 3, 4, 10, 0, 0, 3])
    routes = codec.parse_classless_routes(raw)
    assert routes == (
        (IPv4Network("0.0.0.0/0"), A("10.0.0.1")),
        (IPv4Network("192.168.5.0/24"), A("10.0.0.2")),
        (IPv4Network("1.2.3.4/32"), A("10.0.0.3")),
    )
    for bad, why in (
        (bytes([33, 1, 2, 3, 4, 5, 1, 1, 1, 1]), "width"),
        (bytes([24, 10, 0, 0, 1, 1, 1]), "truncated"),
        (bytes([8, 10, 0, 0, 1]), "truncated"),
        (bytes([8, 10, 1, 2, 3, 4, 0]), "truncated"),
        (bytes([16, 10, 1, 1, 1, 1]), "truncated"),
        (bytes([8, 10, 0, 0, 0, 0, 9, 10, 64, 1, 1, 1, 1]), "host bits"),
    ):
        with pytest.raises(codec.DecodeError, match=why):
            codec.parse_classless_routes(bad)
    with pytest.raises(codec.DecodeError, match="121"):
        codec.decode(codec.encode(reply(extra=((121, bytes([24, 10, 0])),))))


def test_domain_search_with_pointers_and_loops() -> None:
    raw = b"\x04test\x07example\x00\x03lab\xc0\x05"
    assert codec.parse_domain_list(raw) == ("test.example", "lab.example")
    for bad in (b"\xc0\x00", b"\x03ab", b"\x03abc", b"\x01a\xc0\x02", b"\x40a\x00", b"\x01a\xc0"):
        with pytest.raises(codec.DecodeError, match="119"):
            codec.parse_domain_list(bad)


def test_ip_udp_frame_round_trip_and_rejects() -> None:
    frame = codec.ip_udp_frame(codec.ZERO, A("255.255.255.255"), 68, 67, b"hello")
    assert codec.parse_ip_udp(frame) == (codec.ZERO, A("255.255.255.255"), 68, 67, b"hello")
    with_opts = bytearray(frame[:20] + b"\x01\x01\x01\x00" + frame[20:])  # IHL 6
    with_opts[0] = 0x46
    struct.pack_into("!HH", with_opts, 2, len(with_opts), 0)
    struct.pack_into("!H", with_opts, 10, 0)
    struct.pack_into("!H", with_opts, 10, codec._csum(bytes(with_opts[:24])))
    assert codec.parse_ip_udp(bytes(with_opts))[4] == b"hello"
    nocsum = bytearray(frame)
    nocsum[26:28] = b"\0\0"
    assert codec.parse_ip_udp(bytes(nocsum))[4] == b"hello"  # UDP checksum 0 allowed
    cases = {
        "header length": (0, 0x44),
        "protocol": (9, 6),
        "header checksum": (8, 1),
        "UDP: bad checksum": (30, 0x41),
        "fragment": (7, 8),
    }
    for why, (off, val) in cases.items():
        bad = bytearray(frame)
        bad[off] = val
        with pytest.raises(codec.DecodeError, match=why):
            codec.parse_ip_udp(bytes(bad))
    with pytest.raises(codec.DecodeError, match="total length"):
        codec.parse_ip_udp(frame[:-1])
    bad = bytearray(frame)
    struct.pack_into("!H", bad, 24, 7)  # UDP length < 8
    with pytest.raises(codec.DecodeError, match="UDP: bad length"):
        codec.parse_ip_udp(bytes(bad))
    struct.pack_into("!H", bad, 24, 200)  # longer than the IP packet
    with pytest.raises(codec.DecodeError, match="UDP: bad length"):
        codec.parse_ip_udp(bytes(bad))


# ------------------------------------------------------------------ lease


def test_lease_from_ack() -> None:
    extra = (
        (3, A("10.99.0.1").packed),
        (6, A("10.99.0.53").packed),
        (15, b"lab.example"),
        (12, b"node-1"),
        (26, b"\x05\xdc"),
        (119, b"\x03lab\x07example\x00"),
    )
    lease = from_ack(reply(extra=extra), acquired_at=100.0)
    assert (lease.address, lease.prefixlen, lease.server_id) == (A("10.99.0.10"), 24, SERVER)
    assert (lease.t1, lease.t2, lease.expires_at) == (1800.0, 3150.0, 3700.0)
    assert lease.dns == (A("10.99.0.53"),) and lease.search == ("lab.example",)
    assert (lease.hostname, lease.domain, lease.mtu) == ("node-1", "lab.example", 1500)
    assert lease.to_json()["address"] == "10.99.0.10"


def test_lease_rejects() -> None:
    with pytest.raises(LeaseError, match="yiaddr"):
        from_ack(reply(yiaddr="0.0.0.0"), 0)
    with pytest.raises(LeaseError, match="server"):
        from_ack(reply(server=False), 0)
    with pytest.raises(LeaseError, match="lease time"):
        from_ack(reply(lease=0), 0)
    with pytest.raises(LeaseError, match="lease time"):
        from_ack(reply(lease=None), 0)
    with pytest.raises(LeaseError, match="non-contiguous"):
        from_ack(
            reply(extra=())
            if False
            else codec.Message(
                codec.BOOTREPLY,
                7,
                MAC,
                (
                    (53, b"\x05"),
                    (54, SERVER.packed),
                    (51, b"\0\0\1\0"),
                    (1, A("255.0.255.0").packed),
                ),
                yiaddr=A("10.0.0.9"),
            ),
            0,
        )
    assert prefixlen_of(A("255.255.255.255")) == 32 and prefixlen_of(A("0.0.0.0")) == 0


def test_lease_times_normalised() -> None:
    assert normalise_times(100, 80, 40) == (20, 40)  # t1 > t2: keep T2, derive T1
    assert normalise_times(100, 0, 200) == (50, 87.5)
    assert normalise_times(100, 10, 20) == (10, 20)
    assert normalise_times(100, 95, None) == (50, 87.5)
    assert normalise_times(100, None, 30) == (15, 30)
    t58 = ((58, struct.pack("!I", 5000)), (59, struct.pack("!I", 4000)))
    lease = from_ack(reply(extra=t58), 0)
    assert 0 < lease.t1 < lease.t2 < lease.lease_time


@pytest.mark.parametrize(
    "name",
    ["$(reboot)", "-o", "a\nb", "a b", "x" * 64, ".".join(["a" * 60] * 5), "a..b", "", "host;rm"],
)
def test_bad_names_dropped_lease_kept(name: str) -> None:
    raw = name.encode()
    lease = from_ack(reply(extra=((12, raw), (15, raw))), 0)
    assert lease.hostname is None and lease.domain is None
    assert len(lease.dropped) == 2


def test_small_mtu_ignored_lease_kept() -> None:
    lease = from_ack(reply(extra=((26, struct.pack("!H", 500)),)), 0)
    assert lease.mtu is None and "mtu 500" in lease.dropped[0]


def test_option_121_overrides_routers_in_lease_and_plan() -> None:
    from mosnet.topology.lease import planned_routes

    r121 = bytes([8, 172, 10, 99, 0, 2, 0, 10, 99, 0, 1])
    lease = from_ack(reply(extra=((3, A("10.99.0.254").packed), (121, r121))), 0)
    plan = planned_routes(lease)
    assert (IPv4Network("0.0.0.0/0"), A("10.99.0.1"), False) in plan
    assert all(gw != A("10.99.0.254") for _, gw, _ in plan)
    host = codec.Message(
        codec.BOOTREPLY,
        7,
        MAC,
        (
            (53, b"\x05"),
            (54, SERVER.packed),
            (51, b"\0\0\1\0"),
            (1, b"\xff" * 4),
            (3, A("192.0.2.1").packed),
        ),
        yiaddr=A("10.0.0.9"),
    )
    plan32 = planned_routes(from_ack(host, 0))
    assert plan32 == [
        (IPv4Network("192.0.2.1/32"), None, False),
        (IPv4Network("0.0.0.0/0"), A("192.0.2.1"), True),
    ]
