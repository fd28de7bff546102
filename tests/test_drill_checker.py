"""The drill can fail: injected faults turn the matching steps red, each with a message saying what was wrong.

Runs the whole drill on real VMs with the faults of lab.drill.context.INJECTIONS, on the project's lab: from
the mode's `provisioned-<mode>` snapshot when an earlier drill saved one (`nox -s tests` does), else
provisioned. The fio block is corrupted in a cluster-mode drill: there the data is expected to survive, so
only the injection can turn acknowledged_writes_survive red (in the paper's mode the data is lost anyway).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.drill.context import INJECTIONS

pytestmark = [pytest.mark.vm, pytest.mark.checker]

ROOT = Path(__file__).resolve().parents[1]


FIO_INJECTION = "corrupt-fio-block"


def drill_with(tmp_path_factory, injections: list[str], arbitrator: str) -> dict:
    work = tmp_path_factory.mktemp("checker")
    artifacts = work / "artifacts"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "scenarios" / "failover.py"), "-p", "no:cacheprovider",
         f"--inject={','.join(injections)}", f"--arbitrator={arbitrator}", f"--artifacts={artifacts}",
         "--keep-lab=never", f"--junitxml={work / 'junit.xml'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )
    (work / "pytest.log").write_text(result.stdout + result.stderr)
    results = json.loads((artifacts / "latest" / "results.json").read_text())
    events = [json.loads(line) for line in (artifacts / "latest" / "events.jsonl").read_text().splitlines()]
    return {"exit": result.returncode, "results": results, "events": events, "log": result.stdout}


@pytest.fixture(scope="module")
def injected_run(tmp_path_factory) -> dict:
    return drill_with(tmp_path_factory, [i for i in INJECTIONS if i != FIO_INJECTION], "paper")


@pytest.fixture(scope="module")
def fio_injected_run(tmp_path_factory) -> dict:
    return drill_with(tmp_path_factory, [FIO_INJECTION], "cluster")


def step_error(run: dict, step: str) -> str:
    return next(e["error"] for e in run["events"] if e["kind"] == "step-failed" and e["step"] == step)


def test_the_run_fails(injected_run):
    assert injected_run["exit"] == 1, injected_run["log"][-3000:]
    assert {"md5_after_copy", "survivor_pool_clean", "final_paths_back"} <= set(injected_run["results"]["unexpected"])


def test_a_corrupted_copy_turns_the_md5_step_red(injected_run):
    error = step_error(injected_run, "test_4_copy_finishes_through_the_survivor_and_md5_matches")
    assert "claim 'md5_after_copy' did not hold but was expected to hold: source " in error


def test_a_pool_error_on_the_survivor_turns_the_scrub_step_red(injected_run):
    error = step_error(injected_run, "test_5_scrub_on_the_survivor")
    assert "claim 'survivor_pool_clean' did not hold but was expected to hold" in error
    assert "permanent errors: none" not in error.split("survivor_pool_clean", 1)[1].split(";")[0]


def test_a_path_that_does_not_come_back_turns_the_final_step_red(injected_run):
    error = step_error(injected_run, "test_7_final_state")
    assert "claim 'final_paths_back' did not hold but was expected to hold: client multipath CTRL_A" in error


def test_a_block_corrupted_behind_fios_back_turns_acknowledged_writes_red(fio_injected_run):
    assert fio_injected_run["exit"] == 1, fio_injected_run["log"][-3000:]
    injected = next(e for e in fio_injected_run["events"] if e["kind"] == "inject")
    block = int(injected["command"].split("seek=")[1].split()[0]) * 4096
    error = step_error(fio_injected_run, "test_4_copy_finishes_through_the_survivor_and_md5_matches")
    assert "claim 'acknowledged_writes_survive' did not hold but was expected to hold: " in error
    assert f"at offset {block} (crc32c mismatch)" in error or f"at offset {block} (bad " in error
    assert fio_injected_run["results"]["facts"]["acknowledged_writes_lost"] >= 1
