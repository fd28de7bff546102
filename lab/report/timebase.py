"""Placing the client guest's times on the host's clock, from the drill's clock readings (clocks.jsonl).

fio stamps each I/O with the client's clock; the fault and the cluster's marks are host times. A reading
pairs a guest time with the host time around it, so ``offset_s`` shifts a guest time onto the host's and
``error_s`` bounds how far off that shift can be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.runfolder import as_number
from lab.runfolder_io import loads

CLOCKS_NAME = "clocks.jsonl"
DEFAULT_CLIENT = "clnt-1"
"""The paper topology's client: clocks.jsonl does not say which host ran fio (see ``client_host``)."""
BOUND_WARN_S = 0.25
"""A bound above this blurs a stall measured in seconds and marks a few seconds apart: the report says so."""


@dataclass(frozen=True)
class ClockReading:
    host: str
    label: str
    offset_s: float
    error_s: float
    host_mid: float | None


@dataclass(frozen=True)
class TimeBase:
    """How client times become host times: ``host = guest + offset_s``, within ``error_s``."""

    offset_s: float
    error_s: float
    source: str

    @property
    def too_loose(self) -> bool:
        return self.error_s > BOUND_WARN_S

    def note(self) -> str:
        text = (f"client times shifted by {self.offset_s:+.3f} s onto the host's clock ({self.source}); "
                f"they are placed within ±{self.error_s:.3f} s")
        if self.too_loose:
            text += (f", which exceeds {BOUND_WARN_S} s: the stall and the takeover marks may be off by that "
                     "much")
        return text


def read_clocks(text: str) -> tuple[list[ClockReading], int]:
    """Every reading that has a host, an offset and a non-negative error, and how many lines did not."""
    readings, damaged = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = loads(line)
        except ValueError:
            damaged += 1
            continue
        reading = _reading(data)
        if reading is None:
            damaged += 1
        else:
            readings.append(reading)
    return readings, damaged


def _reading(data: Any) -> ClockReading | None:
    if not isinstance(data, dict) or not isinstance(data.get("host"), str):
        return None
    offset, error = as_number(data.get("offset_s")), as_number(data.get("error_s"))
    if offset is None or error is None or error < 0:
        return None
    before, after = as_number(data.get("host_before")), as_number(data.get("host_after"))
    mid = (before + after) / 2 if before is not None and after is not None else None
    label = data.get("label") if isinstance(data.get("label"), str) else ""
    return ClockReading(data["host"], label, offset, error, mid)


def client_host(readings: list[ClockReading], facts: dict[str, Any]) -> str | None:
    """The host whose clock fio used: the ``client_host`` fact, else the paper's client, else the only host."""
    hosts = list(dict.fromkeys(r.host for r in readings))
    named = facts.get("client_host")
    if isinstance(named, str) and named:
        return named
    if DEFAULT_CLIENT in hosts:
        return DEFAULT_CLIENT
    return hosts[0] if len(hosts) == 1 else None


def _disagreement(readings: list[ClockReading]) -> float:
    """How far apart the readings' offsets are beyond their own error bounds (0 when they all overlap)."""
    lowest_top = min(r.offset_s + r.error_s for r in readings)
    highest_bottom = max(r.offset_s - r.error_s for r in readings)
    return max(highest_bottom - lowest_top, 0.0)


def choose_time_base(readings: list[ClockReading], facts: dict[str, Any], fault: float | None) -> TimeBase | None:
    """The client's time base, or None when neither clocks.jsonl nor the facts give one.

    The reading with the smallest error is used: the guest clock drifts by far less than an SSH round trip
    over a drill's minutes. When the readings disagree beyond their bounds the clock was stepped or drifted
    during the run; then the reading nearest the fault is used, and the bound widens to the disagreement,
    since the step may lie between that reading and the fault."""
    host = client_host(readings, facts)
    mine = [r for r in readings if r.host == host]
    if mine:
        best = min(mine, key=lambda r: r.error_s)
        moved = _disagreement(mine)
        if moved == 0 or fault is None:
            how = "smallest error" if len(mine) > 1 else "its only reading"
            return TimeBase(best.offset_s, best.error_s + moved,
                            f"{CLOCKS_NAME}, {host} reading {best.label or 'unnamed'!r}, {how}"
                            + (f"; readings disagree by {moved:.3f} s" if moved else ""))
        timed = [r for r in mine if r.host_mid is not None] or mine
        nearest = min(timed, key=lambda r: abs(r.host_mid - fault) if r.host_mid is not None else 0.0)
        return TimeBase(nearest.offset_s, max(nearest.error_s, moved),
                        f"{CLOCKS_NAME}, {host} reading {nearest.label or 'unnamed'!r} nearest the fault: the "
                        f"readings disagree by {moved:.3f} s, so the clock moved during the run")
    offset, error = as_number(facts.get("client_clock_offset_s")), as_number(facts.get("time_base_error_s"))
    if offset is not None and error is not None and error >= 0:
        return TimeBase(offset, error, "results.json's client_clock_offset_s and time_base_error_s")
    return None
