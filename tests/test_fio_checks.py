"""Judging fio's latency log and verify-only pass, on the real runs in tests/fixtures/parsers/fio."""

from pathlib import Path

import pytest

from lab.drill.fio_checks import acknowledged_writes_survive, window_latency
from lab.parsers.fio import Direction, LatencySample, parse_fio_json, parse_latency_log
from lab.parsers.fio_stall import longest_completion_gap, stall_from_fault

FIO = Path(__file__).parent / "fixtures" / "parsers" / "fio"
SIGSTOP_AT = 1796680094.200039704
"""When the SIGSTOP run's job process was stopped (SOURCES.md); it was continued 1.508 s later."""


def sigstop_log():
    return parse_latency_log((FIO / "write_pass_sigstop_lat.1.log").read_text())


def verify_pass(name: str):
    stderr = FIO / f"{name}.stderr"
    return parse_fio_json((FIO / f"{name}.json").read_text(), stderr.read_text() if stderr.exists() else "")


def sample(completed: float, latency: float = 0.001, direction: Direction = Direction.WRITE) -> LatencySample:
    return LatencySample(completed, latency, direction, 4096)


def test_longest_gap_is_the_stopped_process():
    stall = longest_completion_gap(sigstop_log())
    assert stall.seconds == pytest.approx(1.514)
    assert (stall.after, stall.before) == (pytest.approx(1796680094.194), pytest.approx(1796680095.708))


def test_stall_is_measured_from_the_fault_not_from_the_last_io_before_it():
    stall = stall_from_fault(sigstop_log(), SIGSTOP_AT)
    assert stall.seconds == pytest.approx(1.508, abs=0.001)
    assert stall.last_before == pytest.approx(1796680094.194)
    assert stall.first_after == pytest.approx(1796680095.708)
    assert not stall.ongoing and stall.longest.seconds == pytest.approx(1.514)


def test_no_completion_after_the_fault_is_an_ongoing_stall():
    samples = [sample(100.0), sample(100.5)]
    assert stall_from_fault(samples, 101.0).seconds is None
    stall = stall_from_fault(samples, 101.0, until=131.0)
    assert stall.ongoing and stall.seconds == 30.0 and stall.first_after is None


def test_window_latency_counts_and_ranks_the_ios_completed_in_it():
    window = window_latency(sigstop_log(), SIGSTOP_AT, 2.0)
    assert window.samples > 0
    assert window.max >= window.p99 > 0
    writes = window_latency(sigstop_log(), SIGSTOP_AT, 2.0, Direction.WRITE)
    assert 0 < writes.samples < window.samples


def test_window_p99_is_the_nearest_rank():
    samples = [sample(10 + i / 1000, latency=float(i)) for i in range(1, 201)]
    window = window_latency(samples, 10.0, 1.0)
    assert (window.samples, window.p99, window.max) == (200, 198.0, 200.0)
    assert window_latency(samples, 20.0, 1.0).samples == 0


def test_too_few_completions_give_no_gap():
    assert longest_completion_gap([sample(1.0)]) is None


def test_good_verify_only_pass_holds():
    judgement = acknowledged_writes_survive(verify_pass("verify_only_good"))
    assert judgement.holds and "16384 blocks" in judgement.evidence


def test_corrupted_block_turns_the_claim_red():
    judgement = acknowledged_writes_survive(verify_pass("verify_only_corrupt_fatal"))
    assert not judgement.holds
    assert "1 block(s) failed verification, at offset 33554432 (crc32c mismatch)" in judgement.evidence
    assert "continue_on_error=verify" in judgement.evidence


def test_every_corrupted_block_is_named_under_continue_on_error():
    judgement = acknowledged_writes_survive(verify_pass("verify_only_corrupt_continue"))
    assert not judgement.holds
    assert judgement.evidence == ("2 block(s) failed verification, at offset 33554432 (crc32c mismatch), "
                                  "50331648 (bad magic header c139, wanted acca)")


def test_verify_only_with_backlog_is_not_trusted():
    judgement = acknowledged_writes_survive(verify_pass("verify_only_corrupt_with_backlog_passes"))
    assert not judgement.holds and "verify_backlog=16" in judgement.evidence


def test_an_error_without_failure_lines_fails_with_fios_line():
    text = (FIO / "verify_only_corrupt_fatal.json").read_text()
    judgement = acknowledged_writes_survive(parse_fio_json(text))
    assert not judgement.holds
    assert judgement.evidence.startswith("fio job 'beast' ended with error 84: fio: pid=25542, err=84")


def test_an_io_completed_just_after_the_fault_does_not_hide_the_pause():
    samples = [sample(99.9), sample(100.004), sample(128.5), sample(128.6)]
    stall = stall_from_fault(samples, 100.0)
    assert stall.seconds == pytest.approx(28.496)
    assert (stall.resumed_from, stall.first_after) == (pytest.approx(100.004), pytest.approx(128.5))


def test_a_pause_that_never_ends_after_a_late_completion_is_ongoing():
    samples = [sample(99.9), sample(100.5)]
    stall = stall_from_fault(samples, 100.0, until=130.0)
    assert stall.ongoing and stall.seconds == pytest.approx(29.5) and stall.resumed_from == 100.5


def test_pauses_that_begin_after_the_window_are_not_the_faults():
    samples = [sample(100.0 + i * 0.5) for i in range(141)] + [sample(300.0)]
    stall = stall_from_fault(samples, 100.0, window_s=60.0)
    assert stall.seconds == pytest.approx(0.5) and stall.longest.seconds == pytest.approx(130.0)
