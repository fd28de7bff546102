"""One time base: a guest's clock read between two host times, and guest times placed on the host's."""

import pytest

from lab.drill import clock
from lab.drill.clock import ClockReading, TimeBase
from lab.drill.context import Drill
from lab.record import RunRecord
from lab.result import CommandResult
from lab.stacks import get_stack


def reading(guest: float, offset: float, round_trip: float = 0.1, host: str = "clnt-1") -> ClockReading:
    before = guest + offset - round_trip / 2
    return ClockReading(host, "t", before, before + round_trip, guest)


def test_a_reading_is_the_middle_of_its_bracket_give_or_take_half_of_it():
    one = ClockReading("h", "t", 100.0, 100.4, 97.0)
    assert one.offset_s == pytest.approx(3.2) and one.error_s == pytest.approx(0.2)
    assert ClockReading.from_json(one.to_json()) == one


def test_a_drifting_clock_is_followed_between_readings():
    base = TimeBase.of([reading(1000.0, 2.0), reading(1100.0, 2.5), reading(50.0, 9.0, host="ctrl-b")], "clnt-1")
    assert base.to_host(1050.0) == pytest.approx(1052.25)
    assert base.to_host(900.0) == pytest.approx(902.0)
    assert base.to_host(1200.0) == pytest.approx(1202.5)
    assert base.error(1000.0, 1100.0) == pytest.approx(0.05)


def test_the_error_bound_is_the_loosest_reading_used():
    base = TimeBase.of([reading(1000.0, 2.0, 0.1), reading(1050.0, 2.0, 0.9), reading(1100.0, 2.0, 0.1)], "h")
    assert base is None
    base = TimeBase.of([reading(1000.0, 2.0, 0.1), reading(1050.0, 2.0, 0.9), reading(1100.0, 2.0, 0.1)], "clnt-1")
    assert base.error(1000.0, 1100.0) == pytest.approx(0.45)
    assert base.error(1000.0, 1010.0) == pytest.approx(0.45)
    assert base.error(1060.0, 1100.0) == pytest.approx(0.45)


class SlowThenFast:
    """A guest whose first answer takes 0.6 s and later ones 0.02 s; its clock is 1.5 s behind."""

    stack = get_stack("linux")

    def __init__(self, now):
        self.now = now
        self.calls = 0

    def run(self, host, cmd, timeout=60, label=""):
        self.calls += 1
        self.now[0] += 0.3 if self.calls == 1 else 0.01
        guest = self.now[0] - 1.5
        self.now[0] += 0.3 if self.calls == 1 else 0.01
        return CommandResult(cmd, exit_code=0, stdout=f"{guest:.6f}\n", stderr="")


def test_the_tightest_of_a_few_readings_is_kept_in_the_run_folder(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(clock.time, "time", lambda: now[0])
    session = SlowThenFast(now)
    drill = Drill(session, RunRecord.create(tmp_path, "t"), {})
    kept = clock.read_clock(drill, "clnt-1", "start")
    assert session.calls == 2 and kept.error_s == pytest.approx(0.01) and kept.offset_s == pytest.approx(1.5)
    saved = clock.load_readings((drill.record.folder / clock.CLOCKS_NAME).read_text() + "not json\n")
    assert len(saved) == 1 and saved[0].offset_s == pytest.approx(kept.offset_s)


def test_a_host_that_prints_no_time_gives_no_reading(tmp_path):
    class Mute:
        stack = get_stack("linux")

        def run(self, host, cmd, timeout=60, label=""):
            return CommandResult(cmd, exit_code=None, stdout="", stderr="unreachable")

    drill = Drill(Mute(), RunRecord.create(tmp_path, "t"), {})
    assert clock.read_clock(drill, "ctrl-a", "x") is None
    assert not (drill.record.folder / clock.CLOCKS_NAME).exists()
