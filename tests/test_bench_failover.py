"""The failover benchmark's loop with a fake DrillRun (no VM): every run is recorded, a failed drill never stops
the series, run 1 saves the mode's snapshot and the later runs restore it, Ctrl-C writes what it has."""

import json
from io import StringIO
from types import SimpleNamespace

import pytest
from rich.console import Console

from lab import bench, bench_failover
from lab.errors import LabError
from lab.record import RunRecord
from lab.runfolder import ClaimVerdict, EventKind, Expectation, Reason, Results, StepResult, StepStatus

RUN_FIELDS = {"arbitrator", "stall_s", "stall_source", "acknowledged_writes_lost", "verdicts", "unexpected",
              "failed_steps", "run_folder", "started_at", "seconds"}


def results(mode, stall=12.5, held=True, failed=False, **facts):
    claims = [ClaimVerdict("md5_from_disk", held, "", Expectation.HOLD, Reason.CONFIRMED if held else Reason.NOT_HELD),
              ClaimVerdict("copy_completes", True, "", Expectation.HOLD, Reason.CONFIRMED)]
    steps = [StepResult(1, "test_1_copy", StepStatus.FAILED if failed else StepStatus.PASSED, 1.0,
                        "boom" if failed else "")]
    return Results("failover", "linux", "kill-ctrl-a", mode, "ctrl-a", claims=claims,
                   facts={"failover_stall_s": stall, **facts}, steps=steps)


class FakeDrillRun:
    """Makes a run folder like DrillRun (events saying how the lab was set up, results.json), then does what
    the test's script says for this call: return results, raise (after writing results), or Ctrl-C."""

    calls: list = []
    script: list = []

    def __init__(self, scenario, options, progress):
        self.options, self.drill = options, None
        FakeDrillRun.calls.append(options)

    def run(self):
        action = FakeDrillRun.script[len(FakeDrillRun.calls) - 1]
        mode = self.options.arbitrator
        record = RunRecord.create(self.options.artifacts, f"failover-{mode}")
        self.drill = SimpleNamespace(record=record)
        if action == "setup-fails":
            raise LabError("the lab did not boot")
        record.event(EventKind.SNAPSHOT_SAVED if self.options.save_snapshot else EventKind.SNAPSHOT_RESTORED)
        record.event(EventKind.PROVISIONED)
        found = action if isinstance(action, Results) else results(mode)
        found.write(record.folder)
        if action == "interrupt":
            raise KeyboardInterrupt
        if action == "bug":
            raise RuntimeError("a bug in a step")
        return found


@pytest.fixture(autouse=True)
def no_lab(monkeypatch):
    """No test here may boot a lab: the real drill, the lab's removal and the figures all refuse."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test reached the real lab")

    monkeypatch.setattr("lab.drill.orchestrator.DrillRun", refuse)
    monkeypatch.setattr(bench_failover, "remove_lab", refuse)
    monkeypatch.setattr(bench, "bench", refuse)


@pytest.fixture
def fake():
    FakeDrillRun.calls, FakeDrillRun.script = [], []
    return FakeDrillRun


def bench_run(tmp_path, fake, script, modes=("paper",), runs=None):
    fake.script = script
    cleaned = []
    out = StringIO()
    made, status = bench_failover.failover_bench(
        runs or len(script) // len(modes), list(modes), None, tmp_path / "lab", tmp_path / "artifacts",
        Console(file=out, width=200), {"host": "test"}, make=fake, cleanup=lambda: cleaned.append(1))
    return made, status, cleaned, out.getvalue()


def test_a_failed_drill_is_a_finding_and_the_series_goes_on(tmp_path, fake):
    script = [results("paper"), "bug", results("paper", stall=30.0, held=False, failed=True)]
    made, status, cleaned, out = bench_run(tmp_path, fake, script)
    assert status == 0 and len(made.runs) == 3 and len(cleaned) == 2
    first, bug, bad = made.runs
    assert first["error"] == "" and first["stall_s"] == 12.5 and first["verdicts"]["md5_from_disk"] == "held"
    assert bug["error"] == "RuntimeError: a bug in a step" and bug["verdicts"], "the results it wrote are read back"
    assert bad["unexpected"] == ["md5_from_disk"] and bad["failed_steps"] == ["test_1_copy"]
    assert bad["verdicts"]["md5_from_disk"] == "not held"
    assert "data lost in 1 of 3 runs" in out


def test_run_one_saves_the_snapshot_and_the_others_restore_it(tmp_path, fake):
    made, _, _, _ = bench_run(tmp_path, fake, ["ok"] * 6, modes=("paper", "cluster"), runs=3)
    assert [(o.arbitrator, o.save_snapshot) for o in fake.calls] == [
        ("paper", True), ("paper", False), ("paper", False), ("cluster", True), ("cluster", False), ("cluster", False)]
    assert {(o.snapshot, o.keep_lab) for o in fake.calls} == {(bench_failover.SNAPSHOT, "never")}
    assert all(o.artifacts == made.folder / "runs" for o in fake.calls), "the drills' folders stay in the bench's"
    assert [r["snapshot"] for r in made.runs] == ["saved", "restored", "restored"] * 2
    assert [r["run"] for r in made.runs] == [1, 2, 3, 1, 2, 3]


def test_a_run_that_failed_to_set_up_leaves_the_snapshot_to_the_next(tmp_path, fake):
    made, status, _, _ = bench_run(tmp_path, fake, ["setup-fails", "ok", "ok"])
    assert status == 0 and [o.save_snapshot for o in fake.calls] == [True, True, False]
    assert made.runs[0]["error"] == "the lab did not boot" and made.runs[0]["stall_s"] is None
    assert made.runs[0]["run_folder"].startswith("runs/")


def test_bench_json_holds_every_field_and_latest_points_at_it(tmp_path, fake):
    made, _, _, _ = bench_run(tmp_path, fake, [results("paper", acknowledged_writes_lost=2,
                                                       failover_stall_source="fio")])
    data = json.loads((made.folder / "bench.json").read_text())
    assert {"measured_at", "machine", "command", "runs"} <= set(data) and data["machine"] == {"host": "test"}
    (run,) = data["runs"]
    assert RUN_FIELDS <= set(run)
    assert run["acknowledged_writes_lost"] == 2 and run["stall_source"] == "fio"
    assert data["summary"]["paper"]["data_lost"] == 1 and data["summary"]["paper"]["stall_p90_s"] == 12.5
    assert (made.folder / run["run_folder"] / "results.json").is_file(), "run_folder is relative to the bench folder"
    assert (tmp_path / "artifacts" / "bench" / "latest").resolve() == made.folder.resolve()
    assert (made.folder / "bench.html").is_file()


def test_a_measure_not_taken_is_null(tmp_path, fake):
    made, _, _, _ = bench_run(tmp_path, fake, [results("paper", stall=None, acknowledged_writes_lost=True)])
    (run,) = made.runs
    assert run["stall_s"] is None and run["acknowledged_writes_lost"] is None and run["stall_source"] == "probe"


def test_ctrl_c_writes_the_runs_so_far_and_cleans_up(tmp_path, fake):
    made, status, cleaned, out = bench_run(tmp_path, fake, ["ok", "interrupt", "ok"])
    assert status == 130 and len(fake.calls) == 2 and len(cleaned) == 2
    data = json.loads((made.folder / "bench.json").read_text())
    assert data["interrupted"] is True and [r["interrupted"] for r in data["runs"]] == [False, True]
    assert "interrupted" in (made.folder / "bench.html").read_text()


@pytest.mark.parametrize("value", ["paper,foo", "", ",", "ALL", "paper cluster"])
def test_arbitrator_is_validated_in_one_line(value, capsys, monkeypatch):
    monkeypatch.setattr(bench_failover, "failover_bench", lambda *args: pytest.fail("drills ran"))
    assert bench.main(["--failover", "2", "--arbitrator", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "paper, takeover, cluster" in err
    if value == "paper,foo":
        assert "--arbitrator foo is not a mode" in err


def test_arbitrators_parse_in_order_once_each():
    assert bench_failover.parse_arbitrators("all") == ["paper", "takeover", "cluster"]
    assert bench_failover.parse_arbitrators("cluster, paper,cluster") == ["cluster", "paper"]
    with pytest.raises(LabError, match="foo, bar is not a mode"):
        bench_failover.parse_arbitrators("foo,paper,bar")


def test_failover_alone_runs_no_figures_unless_asked(monkeypatch):
    called = []
    monkeypatch.setattr(bench, "bench_figures", lambda args, lab_dir: called.append("figures"))
    monkeypatch.setattr(bench_failover, "failover_bench",
                        lambda runs, modes, *rest, command: called.append(("drills", runs, modes)) or (None, 0))
    assert bench.main(["--failover", "5", "--arbitrator", "paper,cluster"]) == 0
    assert called == [("drills", 5, ["paper", "cluster"])]
    called.clear()
    assert bench.main(["--failover", "1", "--runs", "2"]) == 0
    assert called == ["figures", ("drills", 1, ["paper", "takeover", "cluster"])]
    called.clear()
    assert bench.main([]) == 0 and called == ["figures"]


def test_the_command_is_recorded_and_a_lab_error_is_one_line(monkeypatch, capsys):
    seen = []

    def refused(*args, command):
        seen.append(command)
        raise LabError(".lab/bench is a symlink")

    monkeypatch.setattr(bench_failover, "failover_bench", refused)
    assert bench.main(["--failover", "2", "--arbitrator", "cluster"]) == 1
    assert seen == ["python -m lab.bench --failover 2 --arbitrator cluster"]
    assert capsys.readouterr().err.count("\n") == 1


def test_arbitrator_without_failover_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_figures", lambda *args: pytest.fail("figures ran"))
    assert bench.main(["--arbitrator", "paper"]) == 2
    assert "--failover" in capsys.readouterr().err


def test_each_run_records_the_hosts_load(tmp_path):
    from lab import bench_failover

    entry = bench_failover.run_entry("paper", 1, None, None, tmp_path, "2026-12-08T00:00:00Z", 1.0)
    assert len(entry["host_load"]) == 3 and all(load >= 0 for load in entry["host_load"])
