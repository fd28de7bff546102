"""fence_virt's serial wire format (fence-agents agents/virt/include/xvm.h), little-endian and packed.

The guest's stock ``fence_virt -D /dev/ttyS1`` writes one request and reads one reply; a hostlist reply
is followed by host records and an all-zero record. Pure: bytes in, values out.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

MAGIC = 0x61626261
DOMAIN_LENGTH = 64
REQUEST = struct.Struct(f"<IBB{DOMAIN_LENGTH}sI")
REPLY = struct.Struct("<IB")
HOST_RECORD = struct.Struct(f"<{DOMAIN_LENGTH}s{DOMAIN_LENGTH}sBB")
MAGIC_BYTES = struct.pack("<I", MAGIC)


class FenceProtocolError(ValueError):
    """Bytes that are not a request fence_virt could have sent."""


class Action(enum.IntEnum):
    NULL = 0
    OFF = 1
    REBOOT = 2
    ON = 3
    STATUS = 4
    DEVSTATUS = 5
    HOSTLIST = 6


class Response(enum.IntEnum):
    SUCCESS = 0
    """Done; for ``status``: the VM is on."""
    FAIL = 1
    OFF = 2
    """For ``status``: the VM is off."""
    PERM = 3
    """Not a VM this listener may act on."""
    HOSTLIST = 253


@dataclass(frozen=True)
class Request:
    action: Action
    domain: str
    seqno: int
    flags: int = 0


def encode_request(request: Request) -> bytes:
    return REQUEST.pack(MAGIC, request.action, request.flags, _domain_bytes(request.domain), request.seqno)


def decode_request(data: bytes) -> Request:
    """One request of exactly ``REQUEST.size`` bytes."""
    if len(data) != REQUEST.size:
        raise FenceProtocolError(f"a request is {REQUEST.size} bytes, got {len(data)}")
    magic, action, flags, domain, seqno = REQUEST.unpack(data)
    if magic != MAGIC:
        raise FenceProtocolError(f"bad magic {magic:#010x}")
    try:
        kind = Action(action)
    except ValueError:
        raise FenceProtocolError(f"unknown request {action}") from None
    name, _, padding = domain.partition(b"\0")
    if padding.strip(b"\0"):
        raise FenceProtocolError(f"domain {name!r} is not NUL-padded (fence_virt pads it with strncpy)")
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        raise FenceProtocolError(f"domain {name!r} is not ASCII") from None
    return Request(kind, text, seqno, flags)


def encode_reply(response: Response) -> bytes:
    return REPLY.pack(MAGIC, response)


def decode_reply(data: bytes) -> Response:
    magic, response = REPLY.unpack(data)
    if magic != MAGIC:
        raise FenceProtocolError(f"bad magic {magic:#010x}")
    return Response(response)


def encode_host(domain: str, uuid: str, on: bool) -> bytes:
    """One host_state_t: fence_virt prints ``on`` for state 1, ``off`` for anything else."""
    return HOST_RECORD.pack(_domain_bytes(domain), _domain_bytes(uuid), 1 if on else 0, 0)


def encode_hostlist(hosts: list[tuple[str, str, bool]]) -> bytes:
    """The reply to ``hostlist``: the reply header, one record per host, then the all-zero terminator."""
    body = b"".join(encode_host(domain, uuid, on) for domain, uuid, on in hosts)
    return encode_reply(Response.HOSTLIST) + body + bytes(HOST_RECORD.size)


def decode_hosts(data: bytes) -> list[tuple[str, str, bool]]:
    """Host records up to the all-zero one (as fence_virt reads them after a hostlist reply)."""
    hosts = []
    for offset in range(0, len(data) - HOST_RECORD.size + 1, HOST_RECORD.size):
        domain, uuid, state, _ = HOST_RECORD.unpack_from(data, offset)
        if not domain.strip(b"\0") and not uuid.strip(b"\0"):
            return hosts
        hosts.append((domain.split(b"\0", 1)[0].decode(), uuid.split(b"\0", 1)[0].decode(), state == 1))
    raise FenceProtocolError("host list without its all-zero terminator")


class RequestReader:
    """Splits a byte stream into requests, resynchronising on the magic: bytes before it (line noise, a
    half request from a client that died) are dropped and counted, as fence_virt's own reader does."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Request | FenceProtocolError]:
        """The requests (or errors for malformed ones) that ``data`` completes."""
        self.buffer += data
        found: list[Request | FenceProtocolError] = []
        while True:
            start = self.buffer.find(MAGIC_BYTES)
            if start < 0:
                skipped = max(0, len(self.buffer) - (len(MAGIC_BYTES) - 1))
                if skipped:
                    found.append(FenceProtocolError(f"{skipped} bytes without the magic dropped"))
                    del self.buffer[:skipped]
                return found
            if start:
                found.append(FenceProtocolError(f"{start} bytes before the magic dropped"))
                del self.buffer[:start]
            if len(self.buffer) < REQUEST.size:
                return found
            chunk = bytes(self.buffer[: REQUEST.size])
            try:
                found.append(decode_request(chunk))
            except FenceProtocolError as err:
                found.append(err)
                del self.buffer[: len(MAGIC_BYTES)]
                continue
            del self.buffer[: REQUEST.size]


def _domain_bytes(name: str) -> bytes:
    raw = name.encode("ascii")
    if len(raw) >= DOMAIN_LENGTH:
        raise FenceProtocolError(f"domain {name!r} is longer than {DOMAIN_LENGTH - 1} bytes")
    return raw
