"""fence_virt's serial wire format, checked against bytes laid out as xvm.h's packed structs are."""

from __future__ import annotations

import struct

import pytest

from lab.fence.protocol import (
    Action,
    FenceProtocolError,
    Request,
    RequestReader,
    Response,
    decode_hosts,
    decode_reply,
    decode_request,
    encode_hostlist,
    encode_reply,
    encode_request,
)


def c_request(request: int, domain: bytes, seqno: int, flags: int = 0, magic: int = 0x61626261) -> bytes:
    """serial_req_t: u32 magic, u8 request, u8 flags, u8 domain[64], u32 seqno; little-endian, packed."""
    return struct.pack("<I", magic) + bytes([request, flags]) + domain.ljust(64, b"\0") + struct.pack("<I", seqno)


def test_a_request_is_74_bytes_as_the_c_struct():
    raw = c_request(1, b"ctrl-b", 123456)
    assert len(raw) == 74
    assert decode_request(raw) == Request(Action.OFF, "ctrl-b", 123456)
    assert encode_request(Request(Action.OFF, "ctrl-b", 123456)) == raw
    assert raw[:4] == b"abba"[::-1] == b"abba", "the magic reads 'abba' whichever the byte order"


def test_every_action_number_is_fence_virts():
    assert {a.name: a.value for a in Action} == {
        "NULL": 0, "OFF": 1, "REBOOT": 2, "ON": 3, "STATUS": 4, "DEVSTATUS": 5, "HOSTLIST": 6,
    }
    assert {r.name: r.value for r in Response} == {"SUCCESS": 0, "FAIL": 1, "OFF": 2, "PERM": 3, "HOSTLIST": 253}


def test_the_reply_is_the_magic_and_one_byte():
    assert encode_reply(Response.OFF) == struct.pack("<IB", 0x61626261, 2)
    assert decode_reply(struct.pack("<IB", 0x61626261, 3)) is Response.PERM


@pytest.mark.parametrize(
    "raw, problem",
    [
        (c_request(1, b"ctrl-b", 1, magic=0x12345678), "bad magic"),
        (c_request(9, b"ctrl-b", 1), "unknown request 9"),
        (c_request(1, b"ctrl-\xff", 1), "not ASCII"),
        (c_request(1, b"ctrl-b", 1)[:-1], "74 bytes"),
        (c_request(1, b"ctrl-b\0abba", 1), "not NUL-padded"),
    ],
)
def test_malformed_requests_are_refused_by_name(raw: bytes, problem: str):
    with pytest.raises(FenceProtocolError, match=problem):
        decode_request(raw)


def test_hostlist_records_are_host_state_t_and_end_with_a_zero_record():
    body = encode_hostlist([("ctrl-a", "8a1b2c3d", True), ("ctrl-b", "11223344", False)])
    record = struct.Struct("<64s64sBB")
    assert body[:5] == struct.pack("<IB", 0x61626261, 253)
    assert len(body) == 5 + 3 * record.size == 5 + 3 * 130
    assert record.unpack_from(body, 5) == (b"ctrl-a".ljust(64, b"\0"), b"8a1b2c3d".ljust(64, b"\0"), 1, 0)
    assert record.unpack_from(body, 5 + 130)[2] == 0
    assert body[5 + 260:] == bytes(130)
    assert decode_hosts(body[5:]) == [("ctrl-a", "8a1b2c3d", True), ("ctrl-b", "11223344", False)]


def test_the_reader_splits_a_stream_and_resyncs_on_the_magic():
    reader = RequestReader()
    first, second = c_request(4, b"ctrl-a", 7), c_request(1, b"ctrl-b", 8)
    found = reader.feed(b"\r\n\x00garbage" + first[:30])
    assert [type(x) for x in found] == [FenceProtocolError], "the noise before the magic is reported once"
    found = reader.feed(first[30:] + second[:3])
    assert found == [Request(Action.STATUS, "ctrl-a", 7)]
    assert reader.feed(second[3:]) == [Request(Action.OFF, "ctrl-b", 8)]
    assert reader.buffer == bytearray()


def test_a_bad_request_after_the_magic_does_not_swallow_the_next_one():
    reader = RequestReader()
    found = reader.feed(c_request(42, b"x", 1)[:10] + c_request(3, b"clnt-1", 9))
    assert isinstance(found[0], FenceProtocolError)
    assert found[-1] == Request(Action.ON, "clnt-1", 9)


def test_a_domain_too_long_for_the_struct_is_refused():
    with pytest.raises(FenceProtocolError, match="longer than 63"):
        encode_request(Request(Action.OFF, "x" * 64, 1))


def test_a_request_cut_short_by_a_dead_client_does_not_eat_the_next_one():
    reader = RequestReader()
    found = reader.feed(c_request(1, b"ctrl-b", 1)[:20] + c_request(4, b"ctrl-a", 2))
    assert isinstance(found[0], FenceProtocolError)
    assert found[-1] == Request(Action.STATUS, "ctrl-a", 2)
