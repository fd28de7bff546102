"""One time base for the run: each guest's clock offset from the host, estimated at each look.

A reading brackets the guest's clock read between two host times (Jepsen's way): the guest's time was
read somewhere in that interval, so the offset is the interval's middle minus the guest's time, give or
take half the interval (plus the reading's resolution). Every reading is kept in ``clocks.jsonl``; a
guest time is placed on the host's time by the offsets of the readings around it (interpolated, so a
clock that drifts between looks is followed), with the larger of their error bounds.
"""

from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.guests import clock_offset

if TYPE_CHECKING:
    from lab.drill.context import Drill

CLOCKS_NAME = "clocks.jsonl"
TIGHT_ENOUGH_S = 0.05
"""A reading whose error bound is this small is not retried."""
ATTEMPTS = 3


@dataclass(frozen=True)
class ClockReading:
    host: str
    label: str
    host_before: float
    host_after: float
    guest: float
    resolution: float = 0.0

    @property
    def offset_s(self) -> float:
        """Host time minus guest time: add it to a guest time to get the host's."""
        return (self.host_before + self.host_after) / 2 - self.guest

    @property
    def error_s(self) -> float:
        return (self.host_after - self.host_before) / 2 + self.resolution

    def to_json(self) -> dict:
        return {"host": self.host, "label": self.label, "host_before": round(self.host_before, 6),
                "host_after": round(self.host_after, 6), "guest": round(self.guest, 6),
                "offset_s": round(self.offset_s, 6), "error_s": round(self.error_s, 6),
                "resolution": self.resolution}

    @classmethod
    def from_json(cls, data: dict) -> ClockReading:
        return cls(str(data["host"]), str(data["label"]), float(data["host_before"]), float(data["host_after"]),
                   float(data["guest"]), float(data.get("resolution", 0.0)))


def read_clock(drill: Drill, host: str, label: str) -> ClockReading | None:
    """The tightest of up to ATTEMPTS readings of ``host``'s clock, kept in the run folder; None when the
    host does not answer with a time."""
    best: ClockReading | None = None
    for _ in range(ATTEMPTS):
        before = time.time()
        result = drill.session.run(host, drill.session.stack.clock_read_command(), 15, f"clock-{label}")
        after = time.time()
        found = clock_offset(result.stdout, before, after) if result.exit_code == 0 else None
        if found is None:
            break
        reading = ClockReading(host, label, before, after, float(result.stdout.strip()), found[1])
        if best is None or reading.error_s < best.error_s:
            best = reading
        if best.error_s <= TIGHT_ENOUGH_S:
            break
    if best is not None:
        drill.record.append_json(CLOCKS_NAME, best.to_json())
    return best


def read_clocks(drill: Drill, hosts: list[str], label: str) -> list[ClockReading]:
    return [r for r in (read_clock(drill, host, label) for host in hosts) if r is not None]


@dataclass(frozen=True)
class TimeBase:
    """A host's readings in guest-time order: guest times → host times, with an error bound."""

    readings: tuple[ClockReading, ...]

    @classmethod
    def of(cls, readings: list[ClockReading], host: str) -> TimeBase | None:
        mine = sorted((r for r in readings if r.host == host), key=lambda r: r.guest)
        return cls(tuple(mine)) if mine else None

    def _around(self, guest: float) -> tuple[ClockReading, ClockReading]:
        times = [r.guest for r in self.readings]
        index = bisect.bisect_left(times, guest)
        if index == 0:
            return self.readings[0], self.readings[0]
        if index == len(times):
            return self.readings[-1], self.readings[-1]
        return self.readings[index - 1], self.readings[index]

    def offset(self, guest: float) -> float:
        first, second = self._around(guest)
        if first is second or second.guest == first.guest:
            return first.offset_s
        share = (guest - first.guest) / (second.guest - first.guest)
        return first.offset_s + share * (second.offset_s - first.offset_s)

    def to_host(self, guest: float) -> float:
        return guest + self.offset(guest)

    def error(self, start: float, end: float) -> float:
        """The error bound of placing guest times in ``[start, end]`` on the host's time."""
        used = {r for t in (start, end) for r in self._around(t)}
        used |= {r for r in self.readings if start <= r.guest <= end}
        return max(r.error_s for r in used)


def load_readings(text: str) -> list[ClockReading]:
    """``clocks.jsonl``'s readings; a line that is not one is skipped."""
    readings = []
    for line in text.splitlines():
        try:
            readings.append(ClockReading.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return readings
