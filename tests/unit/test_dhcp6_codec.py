"""DHCPv6 codec: round trips, nested IA_NA/IAADDR, status codes, malformed input."""

from __future__ import annotations

import os
import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.dhcp6 import codec

pytestmark = pytest.mark.unit

MAC = bytes.fromhex("020000000001")
DUID = codec.duid_ll(MAC)
SERVER = bytes.fromhex("000100012a2b2c2d020000000099")
ADDR = IPv6Address("fd00:90::123")
EXAMPLES = int(os.environ.get("MOSNET_FUZZ_EXAMPLES", "2000"))


def _reply(ia: codec.IaNa, *extra: tuple[int, bytes]) -> codec.Message:
    opts = (
        (codec.OPT_CLIENTID, DUID),
        (codec.OPT_SERVERID, SERVER),
        (codec.OPT_IA_NA, codec.ia_na(ia)),
        (codec.OPT_DNS_SERVERS, IPv6Address("fd00:90::53").packed),
        (codec.OPT_DOMAIN_LIST, codec.encode_names(("v6.example", "lab"))),
        *extra,
    )
    return codec.Message(codec.REPLY, 0xABCDEF, opts)


def test_duid_ll() -> None:
    assert DUID == b"\x00\x03\x00\x01" + MAC


def test_solicit_bytes() -> None:
    msg = codec.Message(
        codec.SOLICIT, 0x123456, ((codec.OPT_CLIENTID, DUID), codec.elapsed(0), codec.oro(23, 24))
    )
    data = codec.encode(msg)
    assert data[:4] == b"\x01\x12\x34\x56"
    assert data[4:8] == b"\x00\x01\x00\x0a" and data[8:18] == DUID
    assert data[18:24] == b"\x00\x08\x00\x02\x00\x00"
    assert data[24:] == b"\x00\x06\x00\x04\x00\x17\x00\x18"
    assert codec.decode(data) == msg


def test_round_trip_nested_ia() -> None:
    ia = codec.IaNa(7, 60, 96, (codec.IaAddr(ADDR, 100, 120),))
    msg = _reply(ia, codec.elapsed(5))
    back = codec.decode(codec.encode(msg))
    assert back == msg
    assert back.ia_nas == (ia,) and back.server_id == SERVER and back.client_id == DUID
    assert back.dns == (IPv6Address("fd00:90::53"),)
    assert back.domains == ("v6.example", "lab")
    assert back.status is None and back.preference == 0


def test_status_codes() -> None:
    ia = codec.IaNa(1, 0, 0, (), codec.Status(codec.NO_ADDRS_AVAIL, "none left"))
    msg = _reply(ia, codec.status_option(codec.Status(codec.UNSPEC_FAIL, "x")))
    back = codec.decode(codec.encode(msg))
    assert back.ia_nas[0].status == codec.Status(2, "none left")
    assert str(back.ia_nas[0].status) == "NoAddrsAvail: none left"
    assert back.status == codec.Status(1, "x")
    addr_status = codec.IaNa(1, 0, 0, (codec.IaAddr(ADDR, 0, 0, codec.Status(4)),))
    assert codec.decode(codec.encode(_reply(addr_status))).ia_nas[0].addrs[
        0
    ].status == codec.Status(codec.NOT_ON_LINK)


@pytest.mark.parametrize(
    "data",
    [
        b"\x07\x00\x00",  # short header
        b"\x07\x00\x00\x01\x00\x01\x00",  # truncated option header
        b"\x07\x00\x00\x01\x00\x01\x00\x09" + DUID[:4],  # option past the end
        b"\x07\x00\x00\x01\x00\x08\x00\x01\x00",  # elapsed time of 1 byte
        b"\x07\x00\x00\x01\x00\x17\x00\x04" + b"\0" * 4,  # DNS not a multiple of 16
        b"\x07\x00\x00\x01\x00\x03\x00\x08" + b"\0" * 8,  # IA_NA shorter than 12
        b"\x07\x00\x00\x01\x00\x03\x00\x10" + b"\0" * 12 + b"\x00\x05\x00\x00",  # IAADDR too short
        b"\x07\x00\x00\x01\x00\x0d\x00\x01\x00",  # status code of 1 byte
        b"\x07\x00\x00\x01\x00\x02\x00\x01\x00",  # 1-byte DUID
        b"\x0c" + b"\0" * 40,  # relay-forward
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(data)


def test_bad_domain_list_is_empty_not_an_error() -> None:
    msg = codec.decode(codec.encode(codec.Message(7, 1, ((codec.OPT_DOMAIN_LIST, b"\xc0\x0c"),))))
    assert msg.domains == ()


_opt = st.tuples(
    st.sampled_from([1, 2, 3, 5, 7, 8, 13, 14, 23, 24, 32, 99]), st.binary(max_size=40)
)


@given(st.binary(max_size=300))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_bytes(data: bytes) -> None:
    _decode_all(data)


@given(st.lists(_opt, max_size=8), st.integers(0, 255))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_structured(options: list[tuple[int, bytes]], kind: int) -> None:
    data = struct.pack("!I", kind << 24 | 0x42) + codec.encode_options(tuple(options))
    _decode_all(data)
    for cut in (len(data) - 1, len(data) // 2):
        _decode_all(data[:cut])


def _decode_all(data: bytes) -> None:
    """decode raises only DecodeError, and no accessor of a decoded message raises."""
    try:
        msg = codec.decode(data)
    except codec.DecodeError:
        return
    _ = (
        msg.client_id,
        msg.server_id,
        msg.status,
        msg.preference,
        msg.ia_nas,
        msg.dns,
        msg.domains,
        msg.info_refresh,
    )
    assert codec.decode(codec.encode(msg)) == msg
