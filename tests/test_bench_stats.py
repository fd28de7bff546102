"""The failover benchmark's per-mode figures on hand-made runs: nearest-rank p90, data lost in k of N, flaky
verdicts; a hand-edited run never raises."""

import pytest

from lab.bench_stats import data_text, lost_data, mode_stats, nearest_rank


def run(mode="paper", number=1, stall=10.0, lost=None, **verdicts):
    return {"arbitrator": mode, "run": number, "stall_s": stall, "acknowledged_writes_lost": lost,
            "verdicts": {claim: "held" if held else "not held" for claim, held in verdicts.items()},
            "unexpected": [], "failed_steps": []}


@pytest.mark.parametrize(("values", "p90"), [([], None), ([5.0], 5.0), ([3.0, 1.0, 2.0], 3.0),
                                             (list(range(1, 11)), 9), (list(range(1, 21)), 18),
                                             (list(range(1, 12)), 10)])
def test_p90_is_the_nearest_rank(values, p90):
    assert nearest_rank(values, 90) == p90


def test_stall_figures_per_mode_in_order_of_appearance():
    runs = [run("cluster", 1, 27.6), run("paper", 1, 4.0), run("cluster", 2, 25.0), run("cluster", 3, 30.0),
            run("cluster", 4, 26.0), run("paper", 2, None)]
    stats = mode_stats(runs)
    assert list(stats) == ["cluster", "paper"]
    cluster = stats["cluster"]
    assert (cluster.stall_min, cluster.stall_median, cluster.stall_p90, cluster.stall_max) == (25.0, 26.8, 30.0, 30.0)
    assert stats["paper"].stalls == [4.0] and stats["paper"].counted == 2
    assert cluster.stall_sources == {"probe": 4}


def test_data_lost_by_writes_or_md5_and_unjudged_runs_are_named():
    runs = [run(number=1, lost=0, md5_from_disk=True, final_md5=True),
            run(number=2, lost=3, md5_from_disk=True),
            run(number=3, md5_from_disk=False),
            run(number=4, final_md5=False),
            run(number=5),
            run(number=6, lost=0)]
    assert [lost_data(r) for r in runs] == [False, True, True, True, None, False]
    stats = mode_stats(runs)["paper"]
    assert (stats.data_lost, stats.data_judged) == (3, 5)
    assert data_text(stats) == "data lost in 3 of 5 runs (1 not judged)"


def test_a_verdict_that_differs_between_runs_of_a_mode_is_flaky():
    runs = [run("paper", 1, md5_from_disk=True, copy_completes=True),
            run("paper", 2, md5_from_disk=False, copy_completes=True),
            run("paper", 3, md5_from_disk=True, copy_completes=True),
            run("cluster", 1, md5_from_disk=False), run("cluster", 2, md5_from_disk=False)]
    stats = mode_stats(runs)
    (flaky,) = stats["paper"].flaky
    assert (flaky.claim, flaky.held, flaky.not_held) == ("md5_from_disk", [1, 3], [2])
    assert stats["cluster"].flaky == [], "the same verdict in every run of a mode is not flaky, even across modes"


def test_interrupted_runs_are_listed_but_not_counted():
    runs = [run(number=1, stall=10.0), {**run(number=2, stall=99.0, md5_from_disk=False), "interrupted": True}]
    stats = mode_stats(runs)["paper"]
    assert (stats.runs, stats.counted, stats.stalls, stats.data_judged) == (2, 1, [10.0], 0)


def test_findings_are_counted_per_run():
    runs = [{**run(number=1), "unexpected": ["md5_from_disk"]}, {**run(number=2), "failed_steps": ["test_3"]},
            {**run(number=3), "error": "the lab did not boot", "stall_s": None}]
    stats = mode_stats(runs)["paper"]
    assert (stats.unexpected_runs, stats.failed_runs) == (1, 2)


@pytest.mark.parametrize("hostile", [
    "not a run", {"arbitrator": ["x"], "stall_s": "12", "verdicts": ["held"], "acknowledged_writes_lost": True},
    {"stall_s": float("inf"), "verdicts": {"c": "maybe"}, "unexpected": "c", "run": "one"}, {}])
def test_a_hand_edited_run_counts_as_not_measured(hostile):
    stats = mode_stats([hostile, run()])
    assert sum(s.counted for s in stats.values()) == 1 + isinstance(hostile, dict)
    assert all(s.stalls in ([], [10.0]) for s in stats.values())
