"""fio's facts in words, the same in report.html, the terminal summary and matrix.html.

The facts come from a hand-editable results.json: any of them may be missing or of another type, and is
then said to be so rather than shown half-read."""

from __future__ import annotations

from typing import Any

from lab.runfolder import as_number

NOT_MEASURED = "not measured"
VERIFY_PASSES = {"after-fault": "after the fault", "final": "after recovery"}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def lost_writes(facts: dict[str, Any]) -> int | None:
    """``acknowledged_writes_lost`` when it is a count; None when it was not judged (null, absent, damaged)."""
    return _count(facts.get("acknowledged_writes_lost"))


def lost_writes_text(facts: dict[str, Any]) -> str:
    lost = lost_writes(facts)
    if lost is None:
        return NOT_MEASURED
    return "none" if lost == 0 else f"{lost} acknowledged write(s) lost"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def fault_window_text(window: Any) -> str | None:
    """``fault_window`` in words; None when it is not the contract's shape."""
    if not isinstance(window, dict):
        return None
    start, end = as_number(window.get("start")), as_number(window.get("end"))
    samples = _count(window.get("samples"))
    if start is None or end is None or samples is None:
        return None
    span = f"in the {end - start:.1f} s from the fault"
    if samples == 0:
        return f"no I/O completed {span}"
    p99, most = as_number(window.get("p99_s")), as_number(window.get("max_s"))
    return f"{samples} I/O(s) completed {span}: p99 latency {seconds_text(p99)}, max {seconds_text(most)}"


def verify_pass_text(result: Any) -> str:
    if not isinstance(result, dict):
        return NOT_MEASURED
    verified, failed, error = (_count(result.get(k)) for k in ("verified", "failed", "error"))
    if verified is None or failed is None:
        return NOT_MEASURED
    text = f"{verified} block(s) verified, {failed} failed"
    return text + (f", fio error {error}" if error else "")


def fio_verify_text(verify: Any) -> list[tuple[str, str]] | None:
    """(pass in words, its result in words) for each verify pass; None when ``fio_verify`` is not a mapping."""
    if not isinstance(verify, dict):
        return None
    names = list(VERIFY_PASSES) + [k for k in verify if k not in VERIFY_PASSES]
    return [(VERIFY_PASSES.get(name, str(name)), verify_pass_text(verify[name])) for name in names if name in verify]


def verify_failed(verify: Any) -> bool:
    """Any pass named a block that did not verify, or ended with a fio error."""
    if not isinstance(verify, dict):
        return False
    return any(isinstance(r, dict) and ((_count(r.get("failed")) or 0) or (_count(r.get("error")) or 0))
               for r in verify.values())


def fio_stall_fact_text(facts: dict[str, Any]) -> str | None:
    """The drill's fio stall (fault to first completion, host clock); None when the stall is not fio's."""
    if facts.get("failover_stall_source") != "fio" and facts.get("workload") != "fio":
        return None
    seconds = as_number(facts.get("failover_stall_s"))
    if seconds is None:
        return NOT_MEASURED
    if facts.get("failover_stall_ongoing") is True:
        return f"≥ {seconds:.3f} s: no I/O completed after the fault"
    return f"{seconds:.3f} s from the fault to fio's first completed I/O"
