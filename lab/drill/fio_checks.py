"""What the drill judges from fio's outputs, as pure functions over parsed fio results.

The latency log gives every I/O's completion time (millisecond resolution) and latency: how slow the I/Os
that completed around the fault were (how long none completed, measured from the fault, is
lab.parsers.fio_stall's, which the report reads too). The verify-only pass judges whether acknowledged
writes survived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.parsers.fio import EILSEQ, Direction, FioRun, LatencySample

MAX_OFFSETS_NAMED = 8


@dataclass(frozen=True)
class WindowLatency:
    """The I/Os completed in ``[start, end]``: how many, and their p99 (nearest rank) and max latency."""

    start: float
    end: float
    samples: int
    p99: float | None
    max: float | None


@dataclass(frozen=True)
class Judgement:
    holds: bool
    evidence: str


def window_latency(samples: list[LatencySample], start: float, seconds: float,
                   direction: Direction | None = None) -> WindowLatency:
    """Latency of the I/Os (of one direction, if given) completed within ``seconds`` after ``start``."""
    end = start + seconds
    latencies = sorted(s.latency for s in samples
                       if start <= s.completed <= end and (direction is None or s.direction is direction))
    if not latencies:
        return WindowLatency(start, end, 0, None, None)
    p99 = latencies[math.ceil(0.99 * len(latencies)) - 1]
    return WindowLatency(start, end, len(latencies), p99, latencies[-1])


def acknowledged_writes_survive(verify_pass: FioRun, job: str = "beast") -> Judgement:
    """Judge the verify-only pass (``--verify_only --verify_state_load=1``, see lab.parsers.fio): holds when
    fio read blocks back, verified all of them and reported no error.

    A pass run with ``verify_backlog`` proves nothing (fio 3.33 skips the real reads), so it fails too."""
    result = verify_pass.job(job)
    failures = verify_pass.verify_failures
    if result.option("verify") in (None, "0", "none"):
        return Judgement(False, f"fio job {job!r} ran without verify=, so it checked nothing")
    backlog = result.option("verify_backlog")
    if backlog not in (None, "0"):
        return Judgement(False, f"fio job {job!r} ran verify-only with verify_backlog={backlog},"
                                " where fio 3.33 does not read the blocks back; rerun it without verify_backlog")
    if failures:
        count = max(len(failures), result.total_err or 0)
        offsets = ", ".join(f"{f.offset} ({f.problem})" for f in failures[:MAX_OFFSETS_NAMED])
        more = f" and {len(failures) - MAX_OFFSETS_NAMED} more" if len(failures) > MAX_OFFSETS_NAMED else ""
        stopped = " (fio stopped at the first; rerun with continue_on_error=verify to count all)" \
            if result.total_err is None and result.error == EILSEQ else ""
        return Judgement(False, f"{count} block(s) failed verification, at offset {offsets}{more}{stopped}")
    if result.error or result.total_err:
        line = next((e for e in verify_pass.evidence if e.startswith("fio:")), "no error line printed")
        return Judgement(False, f"fio job {job!r} ended with error {result.error}: {line}")
    if result.read.ios == 0:
        return Judgement(False, f"fio job {job!r} read nothing back, so it verified nothing")
    return Judgement(True, f"fio verified {result.read.ios} blocks ({result.read.bytes} bytes) with no error")
