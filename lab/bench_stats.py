"""Per-mode figures of a failover benchmark, from its ``runs`` list alone (pure: no lab, no files).

bench.html, the terminal table and ``--report`` all read the runs through here, so the rules (nearest-rank
p90, when a run lost data, when a verdict is flaky) are written once. Runs may come from a hand-edited
bench.json: a value of the wrong type counts as not measured, it never raises.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lab.runfolder import as_number

HELD, NOT_HELD = "held", "not held"
DATA_CLAIMS = ("md5_from_disk", "final_md5")
"""A run lost data when one of these did not hold (the copy read back from disk, then after recovery)."""
DATA_LOST_RULE = ("A run lost data when acknowledged_writes_lost > 0, or when md5_from_disk or final_md5 did not "
                  "hold; it is not judged when it measured none of the three")
P90_RULE = "p90 by nearest rank: the ⌈0.9·n⌉-th smallest stall (the largest one below 10 runs)"


@dataclass(frozen=True)
class Flaky:
    """A claim whose verdict differed between runs of one mode: the run numbers of each verdict."""

    claim: str
    held: list[int]
    not_held: list[int]


@dataclass
class ModeStats:
    mode: str
    runs: int = 0
    """Every run of the mode in the list, interrupted ones included."""
    counted: int = 0
    """Runs that were not interrupted: the ones the figures below are over."""
    stalls: list[float] = field(default_factory=list)
    lost: list[bool] = field(default_factory=list)
    """Beside each stall: whether that run lost data (the strip plot marks it)."""
    stall_sources: Counter = field(default_factory=Counter)
    data_lost: int = 0
    data_judged: int = 0
    unexpected_runs: int = 0
    failed_runs: int = 0
    flaky: list[Flaky] = field(default_factory=list)

    @property
    def stall_min(self) -> float | None:
        return min(self.stalls) if self.stalls else None

    @property
    def stall_median(self) -> float | None:
        return statistics.median(self.stalls) if self.stalls else None

    @property
    def stall_p90(self) -> float | None:
        return nearest_rank(self.stalls, 90)

    @property
    def stall_max(self) -> float | None:
        return max(self.stalls) if self.stalls else None

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "counted": self.counted, "stall_min_s": self.stall_min,
                "stall_median_s": self.stall_median, "stall_p90_s": self.stall_p90, "stall_max_s": self.stall_max,
                "stall_sources": dict(self.stall_sources), "data_lost": self.data_lost,
                "data_judged": self.data_judged, "unexpected_runs": self.unexpected_runs,
                "failed_runs": self.failed_runs,
                "flaky": [{"claim": f.claim, "held": f.held, "not_held": f.not_held} for f in self.flaky]}


def nearest_rank(values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile: the ⌈p/100·n⌉-th smallest value (an observed value, never interpolated)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def verdicts(run: dict[str, Any]) -> dict[str, str]:
    """The run's claim → "held"/"not held", leaving out anything else a hand-edited file holds."""
    found = run.get("verdicts")
    if not isinstance(found, dict):
        return {}
    return {str(claim): verdict for claim, verdict in found.items() if verdict in (HELD, NOT_HELD)}


def writes_lost(run: dict[str, Any]) -> int | None:
    value = run.get("acknowledged_writes_lost")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def lost_data(run: dict[str, Any]) -> bool | None:
    """True when the run lost data (DATA_LOST_RULE), False when it was judged and did not, None when not judged."""
    lost, judged = writes_lost(run), verdicts(run)
    md5 = [judged[claim] for claim in DATA_CLAIMS if claim in judged]
    if lost is None and not md5:
        return None
    return (lost or 0) > 0 or NOT_HELD in md5


def mode_of(run: dict[str, Any]) -> str:
    return str(run.get("arbitrator") or "?")


def run_number(run: dict[str, Any], fallback: int) -> int:
    number = run.get("run")
    return number if isinstance(number, int) and not isinstance(number, bool) else fallback


def _names(run: dict[str, Any], key: str) -> list[str]:
    value = run.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def mode_stats(runs: list[Any]) -> dict[str, ModeStats]:
    """Per arbitrator mode, in the order the modes first appear: the stall's min/median/p90/max over the runs
    that measured one, data lost in k of n judged runs, runs with unexpected verdicts or failed steps, and the
    flaky claims. Interrupted runs are listed in ``runs`` but left out of every figure."""
    found: dict[str, ModeStats] = {}
    seen: dict[str, dict[str, dict[str, list[int]]]] = {}
    for run in (r for r in runs if isinstance(r, dict)):
        mode = mode_of(run)
        stats = found.setdefault(mode, ModeStats(mode))
        stats.runs += 1
        if run.get("interrupted") is True:
            continue
        stats.counted += 1
        number = run_number(run, stats.runs)
        stall = as_number(run.get("stall_s"))
        lost = lost_data(run)
        if stall is not None:
            stats.stalls.append(stall)
            stats.lost.append(bool(lost))
            stats.stall_sources[str(run.get("stall_source") or "probe")] += 1
        if lost is not None:
            stats.data_judged += 1
            stats.data_lost += lost
        stats.unexpected_runs += bool(_names(run, "unexpected"))
        stats.failed_runs += bool(_names(run, "failed_steps") or run.get("error"))
        for claim, verdict in verdicts(run).items():
            seen.setdefault(mode, {}).setdefault(claim, {HELD: [], NOT_HELD: []})[verdict].append(number)
    for mode, claims in seen.items():
        found[mode].flaky = [Flaky(claim, by[HELD], by[NOT_HELD]) for claim, by in claims.items()
                             if by[HELD] and by[NOT_HELD]]
    return found


def seconds_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def data_text(stats: ModeStats) -> str:
    """"data lost in k of N runs", naming the runs it could not judge."""
    text = f"data lost in {stats.data_lost} of {stats.data_judged} runs"
    unjudged = stats.counted - stats.data_judged
    return text + (f" ({unjudged} not judged)" if unjudged else "")
