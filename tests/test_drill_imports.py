"""no_double_import is judged from each controller's once-a-second record of its imported pools, the
power-offs and fences: these rules decide whether two controllers ever held one pool at once."""

import pytest

from lab.drill.imports import ImportSample, double_imports, holdings, parse_watch_log
from lab.errors import ParseError

A, B = "ctrl-a_m0", "ctrl-b_m0"


def samples(start: float, end: float, *pools: str) -> list[ImportSample]:
    return [ImportSample(float(t), frozenset(pools)) for t in range(int(start), int(end))]


def test_the_watch_log_is_read_line_by_line_and_an_empty_list_is_no_pool():
    text = "100.25 ctrl-a_m0\n101.5 ctrl-a_m0,ctrl-b_m0\n102.0 \n"
    assert parse_watch_log(text) == [ImportSample(100.25, frozenset({A})), ImportSample(101.5, frozenset({A, B})),
                                     ImportSample(102.0, frozenset())]
    with pytest.raises(ParseError, match="line 1"):
        parse_watch_log("yesterday ctrl-a_m0\n")


def test_a_sample_holds_until_the_next_one_or_the_first_power_off_after_it():
    spans = holdings([ImportSample(10, frozenset({A})), ImportSample(11, frozenset({A}))], [11.4, 30], 50)
    assert spans == [(10, 11, frozenset({A})), (11, 11.4, frozenset({A}))]


def test_a_takeover_after_the_owner_lost_power_is_no_double_import():
    watched = {"ctrl-a": samples(0, 20, A), "ctrl-b": samples(0, 20, B) + samples(20, 60, A, B)}
    assert double_imports(watched, {"ctrl-a": [19.5]}, 60) == []


def test_a_frozen_owner_still_holds_its_pool_so_a_takeover_without_fencing_is_a_double_import():
    watched = {"ctrl-a": samples(0, 20, A) + samples(60, 70, A), "ctrl-b": samples(0, 30, B) + samples(30, 70, A, B)}
    found = double_imports(watched, {}, 70)
    assert [(d.pool, d.hosts, d.start, d.end) for d in found] == [(A, ("ctrl-a", "ctrl-b"), 30, 70)]
    assert found[0].seconds == 40


def test_fencing_the_frozen_owner_before_the_import_clears_it():
    watched = {"ctrl-a": samples(0, 20, A), "ctrl-b": samples(0, 30, B) + samples(30, 70, A, B)}
    assert double_imports(watched, {"ctrl-a": [28.0]}, 70) == []


def test_the_papers_cross_import_is_a_double_import_of_both_pools_all_along():
    watched = {"ctrl-a": samples(0, 10, A, B), "ctrl-b": samples(0, 10, A, B)}
    found = double_imports(watched, {}, 10)
    assert {d.pool for d in found} == {A, B} and all(d.end - d.start == 10 for d in found)


def test_an_overlap_within_the_guest_clocks_tolerance_is_not_reported():
    watched = {"ctrl-a": samples(0, 10, A), "ctrl-b": samples(9, 20, A)}
    assert double_imports(watched, {"ctrl-a": [10.0]}, 20) == []
    assert len(double_imports(watched, {"ctrl-a": [12.0]}, 20)) == 1
