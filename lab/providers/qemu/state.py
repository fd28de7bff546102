"""A qemu lab's ``state.json``, read as untrusted data: it is a file in a directory anyone may have edited
(or replaced by a link, a FIFO, a list), so every field `status`, `ssh` and `up` use is checked for its type
and range before any of them sees it. What is wrong is one line naming the file, the field and the way out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.runfolder_io import NotARegularFile, loads, read_bytes

STATE_VERSION = 1
MAX_PID = 1 << 22
"""Linux's largest pid_max (PID_MAX_LIMIT on 64-bit)."""
MAX_SECONDS = 1e12
"""Epoch seconds far past any lab (year 33658)."""
STATE_WAY_OUT = "run bst down (it removes the lab and this file) and bst up again"

Check = Callable[[Any], bool]


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _int_in(low: int, high: int) -> Check:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_SECONDS


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _table_of(check: Check) -> Check:
    return lambda value: isinstance(value, dict) and all(check(v) for v in value.values())


_pid = _int_in(0, MAX_PID)
_port = _int_in(1, 65535)

HOST_FIELDS: dict[str, Check] = {
    "pid": _optional(_pid), "ssh_port": _optional(_port), "accel": _text, "hostid": _text,
    "macs": _table_of(_text), "image_hash": _optional_text, "started_at": _seconds, "pidfile": _text,
    "qmp": _text, "console_log": _text, "overlay": _text,
}
NETWORK_FIELDS: dict[str, Check] = {"socket": _text, "mgmt": _text, "pid": _optional(_pid)}
DISK_FIELDS: dict[str, Check] = {"path": _text, "size_mb": _int_in(0, 1 << 40), "serial": _text}
TOP_FIELDS: dict[str, Check] = {
    "version": _int_in(0, 1 << 31), "updated_at": _seconds, "lab": _text, "lab_dir": _text, "provider": _text,
    "stack": _text, "ssh_key": _text, "accel": _text, "accel_reason": _text, "disk_cache": _text,
    "hardware": lambda v: isinstance(v, dict), "image": _table_of(_optional_text),
    "restored_from": lambda v: isinstance(v, dict),
}
"""Fields of state.json and what each must hold; a field not named here is kept as it is and never read."""
TABLES_OF_RECORDS = {"hosts": HOST_FIELDS, "networks": NETWORK_FIELDS, "disks": DISK_FIELDS}


def _shown(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in kinds:
        return kinds[type(value)]
    return "a number out of range" if isinstance(value, int | float) else type(value).__name__


def _problem(state: Any) -> str | None:
    """The first field of ``state`` that is missing its type or range, as 'field X is ...'; None when typed."""
    if not isinstance(state, dict):
        return f"it holds {_shown(state)}, not an object"
    for name, check in TOP_FIELDS.items():
        if name in state and not check(state[name]):
            return f"field {name} is {_shown(state[name])}, which it cannot be"
    for table, fields in TABLES_OF_RECORDS.items():
        if table not in state:
            continue
        if not isinstance(state[table], dict):
            return f"field {table} is {_shown(state[table])}, not an object"
        for key, record in state[table].items():
            if not isinstance(record, dict):
                return f"field {table}.{key} is {_shown(record)}, not an object"
            for name, check in fields.items():
                if name in record and not check(record[name]):
                    return f"field {table}.{key}.{name} is {_shown(record[name])}, which it cannot be"
    return None


def read_state(lab_dir: Path, path: Path) -> dict[str, Any]:
    """The lab's state: {} when there is none (or it is of another version); LabError naming the file and
    the field when it is not a regular file, not UTF-8 JSON, or of the wrong shape."""
    def damaged(why: str) -> LabError:
        return LabError(f"lab state {path}: {why}; {STATE_WAY_OUT}")

    try:
        data, cut = read_bytes(lab_dir, path)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except NotARegularFile as refusal:
        raise damaged(str(refusal).replace(f"{path.name} is ", "it is ", 1)) from None
    except OSError as error:
        raise damaged(f"cannot be read ({error.strerror})") from None
    if cut:
        raise damaged("it is larger than a lab's state can be")
    try:
        state = loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise damaged(f"it is not UTF-8 (byte {data[error.start]:#04x} at offset {error.start})") from None
    except ValueError as error:
        raise damaged(f"it is not valid JSON ({error})") from None
    if isinstance(state, dict) and state.get("version") != STATE_VERSION:
        return {}
    problem = _problem(state)
    if problem:
        raise damaged(problem)
    return state
