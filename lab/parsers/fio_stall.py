"""How long fio saw no I/O complete, from its parsed latency log: the stall the fault caused, measured from
the fault rather than from the last I/O before it, and the widest gap anywhere. Pure functions over
lab.parsers.fio's samples; the drill judges with them and the report draws them."""

from __future__ import annotations

from dataclasses import dataclass

from lab.parsers.fio import LatencySample
from lab.parsers.probe import Stall


@dataclass(frozen=True)
class FaultStall:
    """The client's pause the fault caused: the longest wait for a completion that began in the fault window.

    The pause runs from ``resumed_from`` (the fault, or the last completion after it that came before the
    pause: with iodepth 1 and a striped device, an I/O on the surviving leg can complete just after the
    fault and the next one, on the lost leg, then waits) to ``first_after`` (the completion that ended it).
    ``ongoing`` when no I/O completed after the pause began (then ``seconds`` runs to ``until`` if given,
    else it is None). ``last_before`` is the completion that preceded the fault; ``longest`` is the widest
    gap anywhere in the log, for comparison."""

    fault: float
    last_before: float | None
    resumed_from: float
    first_after: float | None
    seconds: float | None
    ongoing: bool
    longest: Stall | None


def longest_completion_gap(samples: list[LatencySample]) -> Stall | None:
    """The widest gap between consecutive I/O completions, or None with fewer than two."""
    done = sorted(s.completed for s in samples)
    gaps = [(round(b - a, 3), a, b) for a, b in zip(done, done[1:], strict=False)]
    if not gaps:
        return None
    gap, after, before = max(gaps)
    return Stall(gap, after, before)


def stall_from_fault(samples: list[LatencySample], fault: float, until: float | None = None,
                     window_s: float = 60.0) -> FaultStall:
    """The stall as the client lived it: the longest pause, starting at the fault or at a completion within
    ``window_s`` after it, until the next completion.

    fio logs completion times truncated to the millisecond, so an I/O completed within the fault's
    millisecond may count on either side of it."""
    done = sorted(s.completed for s in samples)
    before = [t for t in done if t < fault]
    starts = [fault] + [t for t in done if fault <= t <= fault + window_s]
    pauses: list[tuple[float, float, float | None]] = []
    for start in starts:
        following = next((t for t in done if t > start), None)
        if following is not None:
            pauses.append((following - start, start, following))
        elif until is not None:
            pauses.append((until - start, start, None))
    if not pauses:
        return FaultStall(fault, before[-1] if before else None, fault, None, None, True,
                          longest_completion_gap(samples))
    length, start, first_after = max(pauses, key=lambda pause: pause[0])
    return FaultStall(fault, before[-1] if before else None, start, first_after, round(length, 3),
                      first_after is None, longest_completion_gap(samples))
