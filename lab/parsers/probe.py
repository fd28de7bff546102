"""The client's I/O probe log (a timestamped write+read every interval, as the stacks' probe scripts write
it) → samples, and how long I/O stopped. The drill runs the probe (lab.drill.workload); the report reads
its log back."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.errors import ParseError

LATEST_EPOCH = 253402300799.0
"""9999-12-31 23:59:59 UTC: a timestamp past it (or NaN, or an infinity) is not a time a probe wrote."""


@dataclass(frozen=True)
class ProbeSample:
    started: float
    finished: float
    ok: bool


@dataclass(frozen=True)
class Stall:
    """The longest time between two successful probes: how long the client saw no I/O complete.
    ``ongoing``: no probe succeeded after it, so it lasted at least ``seconds`` (until the probe stopped)."""

    seconds: float
    after: float
    before: float
    ongoing: bool = False


def parse_probe_log(text: str) -> list[ProbeSample]:
    """Lines of ``<start epoch> <end epoch> ok|fail`` as the stacks' probe scripts write them."""
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[2] not in ("ok", "fail"):
            raise ParseError(f"probe log line {number}: expected '<start> <end> ok|fail', got {line[:120]!r}")
        try:
            started, finished = float(parts[0]), float(parts[1])
        except ValueError:
            raise ParseError(f"probe log line {number}: timestamps are not numbers in {line[:120]!r}") from None
        if not all(math.isfinite(t) and 0 <= t <= LATEST_EPOCH for t in (started, finished)):
            raise ParseError(f"probe log line {number}: timestamps are not epoch seconds in {line[:120]!r}")
        samples.append(ProbeSample(started, finished, parts[2] == "ok"))
    return samples


def longest_stall(samples: list[ProbeSample]) -> Stall | None:
    """The widest gap between consecutive successful completions, or from the last success to the last
    probe when every probe after it failed (I/O never came back); None without such a gap."""
    done = sorted(s.finished for s in samples if s.ok)
    if not done:
        return None
    gaps = [(b - a, a, b, False) for a, b in zip(done, done[1:], strict=False)]
    last = max(s.finished for s in samples)
    if last > done[-1]:
        gaps.append((last - done[-1], done[-1], last, True))
    if not gaps:
        return None
    gap, after, before, ongoing = max(gaps)
    return Stall(round(gap, 3), after, before, ongoing)
