"""Small helpers shared by the parsers: human-readable numbers and clear errors."""

from __future__ import annotations

import re

from lab.errors import ParseError

_UNIT_POWERS = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_HUMAN_NUMBER = re.compile(r"^(\d+(?:[.,]\d+)?)([BKMGTPE]?)$")


def human_to_int(value: str, *, tool: str, what: str) -> int:
    """Turn ZFS's 1024-based short numbers ("0", "1K", "2.04K", "1,73T") into an int.

    ZFS prints these with ``zfs_nicenum``; the value is rounded, so "1.2K" becomes 1229.
    Some locales print a decimal comma, which is accepted too.
    """
    match = _HUMAN_NUMBER.match(value.strip())
    if match is None:
        raise ParseError(f"{tool}: {what} {value!r} is not a number like '0', '12', '1.2K' or '3T'")
    number = float(match.group(1).replace(",", "."))
    return round(number * 1024 ** _UNIT_POWERS[match.group(2)])


def nonblank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def require_text(text: str, *, tool: str) -> str:
    """Reject None and empty input early, with the tool named."""
    if text is None or not text.strip():
        raise ParseError(f"{tool}: the output is empty; did the command run?")
    return text
