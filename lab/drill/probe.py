"""The client's I/O probe: a timestamped write+read every interval, and how long I/O stopped."""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import ParseError


@dataclass(frozen=True)
class ProbeSample:
    started: float
    finished: float
    ok: bool


@dataclass(frozen=True)
class Stall:
    """The longest time between two successful probes: how long the client saw no I/O complete."""

    seconds: float
    after: float
    before: float


def parse_probe_log(text: str) -> list[ProbeSample]:
    """Lines of ``<start epoch> <end epoch> ok|fail`` as the stacks' probe scripts write them."""
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[2] not in ("ok", "fail"):
            raise ParseError(f"probe log line {number}: expected '<start> <end> ok|fail', got {line!r}")
        try:
            started, finished = float(parts[0]), float(parts[1])
        except ValueError:
            raise ParseError(f"probe log line {number}: timestamps are not numbers in {line!r}") from None
        samples.append(ProbeSample(started, finished, parts[2] == "ok"))
    return samples


def longest_stall(samples: list[ProbeSample]) -> Stall | None:
    """The widest gap between consecutive successful completions (None with fewer than two)."""
    done = sorted(s.finished for s in samples if s.ok)
    if len(done) < 2:
        return None
    gap, after, before = max((b - a, a, b) for a, b in zip(done, done[1:], strict=False))
    return Stall(round(gap, 3), after, before)
