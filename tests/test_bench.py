from lab.bench import Figure, serialized
from lab.plan import Step, stages


def test_serialized_plan_keeps_barriers_and_runs_one_host_at_a_time():
    plan = {"a": [Step("a0", stage=0), Step("a1", stage=1)], "b": [Step("b0", stage=0), Step("b1", stage=1)]}
    serial = serialized(plan)
    order = sorted((step.stage, host, step.name) for host, steps in serial.items() for step in steps)
    assert [name for _, _, name in order] == ["a0", "b0", "a1", "b1"]
    assert len(stages(serial)) == 4
    assert all(len({h for h, steps in serial.items() for s in steps if s.stage == st}) == 1 for st in stages(serial))


def test_figure_median_over_runs():
    assert Figure("x", "x", [3.0, 1.0, 2.0]).median == 2.0
    assert Figure("x", "x", []).median is None


def test_snapshot_restore_is_compared_with_what_it_replaces():
    from lab.bench import comparisons

    figures = [Figure("snapshot_restore", "", [10.0, 12.0]), Figure("rebuild_and_provision", "", [150.0]),
               Figure("provision_parallel", "", [88.0])]
    compared = comparisons(figures)
    assert compared["snapshot_restore_vs_rebuild_and_provision"]["times_faster"] == 13.6
    assert compared["snapshot_restore_vs_rebuild_and_provision"]["seconds_saved"] == 139.0
    assert compared["snapshot_restore_vs_provision_parallel"]["times_faster"] == 8.0
    assert comparisons(figures[1:]) == {}
