"""Parsers for iSCSI initiators: open-iscsi's `iscsiadm -m session [-P 3]` (Linux) and
`iscsictl -L` (FreeBSD)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from lab.errors import ParseError
from lab.parsers._text import require_text

_NO_SESSIONS = "iscsiadm: No active sessions."


@dataclass(frozen=True)
class IscsiSession:
    """One line of `iscsiadm -m session`: `tcp: [1] 192.168.56.11:3260,1 iqn...:target0 (non-flash)`."""

    transport: str
    sid: int
    portal: str
    tpgt: int
    target: str
    flash: bool | None


_SESSION_LINE = re.compile(
    r"^(?P<transport>\S+): \[(?P<sid>\d+)\] (?P<portal>\S+),(?P<tpgt>-?\d+) (?P<target>\S+)"
    r"(?: \((?P<flash>non-flash|flash)\))?$"
)


def parse_iscsiadm_session(text: str) -> list[IscsiSession]:
    """Parse `iscsiadm -m session`; "iscsiadm: No active sessions." (stderr, exit 21) gives []."""
    tool = "iscsiadm -m session"
    require_text(text, tool=tool)
    if text.strip() == _NO_SESSIONS:
        return []
    sessions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SESSION_LINE.match(line.strip())
        if match is None:
            raise ParseError(f"{tool}: unexpected line {line.strip()!r}; expected 'tcp: [sid] portal,tpgt target'")
        sessions.append(
            IscsiSession(
                transport=match["transport"], sid=int(match["sid"]), portal=match["portal"],
                tpgt=int(match["tpgt"]), target=match["target"],
                flash=None if match["flash"] is None else match["flash"] == "flash",
            )
        )
    return sessions


@dataclass(frozen=True)
class AttachedDisk:
    """`Attached scsi disk sdb  State: running` with its `scsiH Channel C Id I Lun: L` address."""

    device: str
    state: str
    host: int
    channel: int
    id: int
    lun: int


@dataclass(frozen=True)
class IscsiSessionDetail:
    target: str
    current_portal: str | None
    persistent_portal: str | None
    sid: int | None
    iface_name: str | None
    iface_ip: str | None
    initiator_name: str | None
    connection_state: str | None
    session_state: str | None
    internal_state: str | None
    host_number: int | None
    host_state: str | None
    disks: tuple[AttachedDisk, ...]


_P3_FIELDS = {
    "Current Portal": "current_portal",
    "Persistent Portal": "persistent_portal",
    "SID": "sid",
    "Iface Name": "iface_name",
    "Iface IPaddress": "iface_ip",
    "Iface Initiatorname": "initiator_name",
    "iSCSI Connection State": "connection_state",
    "iSCSI Session State": "session_state",
    "Internal iscsid Session State": "internal_state",
}
_TARGET = re.compile(r"^Target: (?P<target>\S+)(?: \((?:non-)?flash\))?$")
_HOST = re.compile(r"^Host Number: (?P<number>\d+)\s+State: (?P<state>.+)$")
_LUN = re.compile(r"^scsi(?P<host>\d+) Channel (?P<channel>\d+) Id (?P<id>\d+) Lun: (?P<lun>\d+)$")
_DISK = re.compile(r"^Attached scsi disk (?P<device>\S+)\s+State: (?P<state>.+)$")


def parse_iscsiadm_session_p3(text: str) -> list[IscsiSessionDetail]:
    """Parse `iscsiadm -m session -P 3`: one entry per session (a target with two portals gives two)."""
    tool = "iscsiadm -m session -P 3"
    require_text(text, tool=tool)
    if text.strip() == _NO_SESSIONS:
        return []
    sessions: list[dict] = []
    target: str | None = None
    lun: re.Match | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("*") or line.startswith("iSCSI Transport Class") or line.startswith("version "):
            continue
        if match := _TARGET.match(line):
            target = match["target"]
            continue
        key, colon, value = line.partition(":")
        if key == "Current Portal":
            if target is None:
                raise ParseError(f"{tool}: 'Current Portal' before any 'Target:' line")
            sessions.append({field: None for field in _P3_FIELDS.values()} | {
                "target": target, "host_number": None, "host_state": None, "disks": []})
        if not sessions:
            raise ParseError(f"{tool}: unexpected line {line!r} before any session; is this `-P 3` output?")
        session = sessions[-1]
        if match := _HOST.match(line):
            session["host_number"], session["host_state"] = int(match["number"]), match["state"].strip()
        elif match := _LUN.match(line):
            lun = match
        elif match := _DISK.match(line):
            if lun is None:
                raise ParseError(f"{tool}: 'Attached scsi disk' without its 'scsiN Channel .. Lun:' line")
            session["disks"].append(AttachedDisk(
                device=match["device"], state=match["state"].strip(), host=int(lun["host"]),
                channel=int(lun["channel"]), id=int(lun["id"]), lun=int(lun["lun"])))
        elif colon and key in _P3_FIELDS:
            session[_P3_FIELDS[key]] = value.strip()
    if not sessions:
        raise ParseError(f"{tool}: no 'Target:' with a 'Current Portal:' found; is this `-P 3` output?")
    details = []
    for session in sessions:
        sid = session["sid"]
        details.append(IscsiSessionDetail(**(session | {
            "sid": int(sid) if sid is not None and sid.isdigit() else None,
            "disks": tuple(session["disks"]),
        })))
    return details


class IscsictlState(enum.StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    DISABLED = "disabled"
    DISCOVERY = "discovery"
    NOT_CONNECTED = "not_connected"


@dataclass(frozen=True)
class IscsictlSession:
    """One row of FreeBSD `iscsictl -L`; `reason` is the kernel's text when not connected."""

    target: str
    portal: str
    state: IscsictlState
    devices: tuple[str, ...]
    reason: str | None


_ISCSICTL_HEADER = re.compile(r"^Target name\s+Target portal\s+State$")


def parse_iscsictl_list(text: str) -> list[IscsictlSession]:
    """Parse `iscsictl -L` (or `iscsictl` alone); a header with no rows gives []."""
    tool = "iscsictl -L"
    require_text(text, tool=tool)
    lines = [line for line in text.splitlines() if line.strip()]
    if not _ISCSICTL_HEADER.match(lines[0].strip()):
        raise ParseError(
            f"{tool}: first line {lines[0].strip()!r} is not the 'Target name  Target portal  State' header"
        )
    sessions = []
    for line in lines[1:]:
        words = line.split()
        if line[0].isspace():
            target, rest = "", words
        else:
            target, rest = words[0], words[1:]
        if len(rest) < 2:
            raise ParseError(f"{tool}: row {line.strip()!r} lacks a portal or a state")
        portal, state_text = rest[0], " ".join(rest[1:])
        devices: tuple[str, ...] = ()
        reason = None
        if state_text.startswith("Connected:"):
            state = IscsictlState.CONNECTED
            devices = tuple(word.rstrip(".,") for word in state_text.removeprefix("Connected:").split())
        elif state_text == "Connected":
            state = IscsictlState.CONNECTED
        elif state_text in ("Disconnected", "Disabled", "Discovery"):
            state = IscsictlState(state_text.lower())
        else:
            state, reason = IscsictlState.NOT_CONNECTED, state_text
        sessions.append(IscsictlSession(target=target, portal=portal, state=state, devices=devices, reason=reason))
    return sessions
