"""The nightly workflow read as data: one job per scenario module x arbitrator mode, each with its own lab,
the guest image cached under its recipe hash, and a final job that builds the matrix from every run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.topology.load import ARBITRATORS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


@pytest.fixture(scope="module")
def jobs() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def _runs(job: dict) -> list[str]:
    return [step.get("run", "") for step in job["steps"]]


def _step(job: dict, needle: str) -> dict:
    found = [step for step in job["steps"] if needle in step.get("run", "") or needle in step.get("uses", "")]
    assert len(found) == 1, f"expected one step with {needle!r}, found {len(found)}"
    return found[0]


def test_the_matrix_is_every_scenario_module_in_every_arbitrator_mode(jobs):
    modules = sorted(p.stem for p in (ROOT / "scenarios").glob("*.py") if p.name != "conftest.py")
    strategy = jobs["drill"]["strategy"]
    assert sorted(strategy["matrix"]["scenario"]) == modules
    assert strategy["matrix"]["arbitrator"] == list(ARBITRATORS)
    assert strategy["fail-fast"] is False


def test_each_drill_job_boots_its_own_lab_drills_one_cell_and_always_tears_down(jobs):
    drill = jobs["drill"]
    runs = _runs(drill)
    up = next(i for i, run in enumerate(runs) if "-s lab-up" in run)
    drilled = next(i for i, run in enumerate(runs) if " drill" in run and '--scenario "$SCENARIO"' in run)
    down = _step(drill, "-s lab-down")
    assert up < drilled < drill["steps"].index(down)
    assert '--arbitrator "$ARBITRATOR"' in runs[drilled]
    assert drill["env"] == {"SCENARIO": "${{ matrix.scenario }}", "ARBITRATOR": "${{ matrix.arbitrator }}"}
    assert down["if"] == "always()"
    assert any("99-kvm4all.rules" in run for run in runs)


def test_each_run_folder_is_uploaded_under_its_fault_and_mode(jobs):
    upload = _step(jobs["drill"], "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert "${{ matrix.scenario }}" in upload["with"]["name"] and "${{ matrix.arbitrator }}" in upload["with"]["name"]
    assert upload["with"]["path"].split() == ["artifacts/", "!artifacts/latest"]


def test_the_guest_image_is_cached_under_its_recipe_hash(jobs):
    image = jobs["image"]
    assert "python -m lab.images.debian" in _step(image, "python -m lab.images.debian")["run"]
    assert image["outputs"]["recipe-hash"] == "${{ steps.recipe.outputs.hash }}"
    assert _step(image, "actions/cache@")["with"]["key"].endswith("${{ steps.recipe.outputs.hash }}")
    restore = _step(jobs["drill"], "actions/cache/restore@")
    assert jobs["drill"]["needs"] == "image"
    assert restore["with"]["key"].endswith("${{ needs.image.outputs.recipe-hash }}")
    assert restore["with"]["path"] == _step(image, "actions/cache@")["with"]["path"]


def test_the_last_job_builds_the_matrix_from_every_run_folder_even_after_failures(jobs):
    report = jobs["report"]
    assert report["needs"] == "drill" and report["if"] == "always()"
    download = _step(report, "actions/download-artifact")["with"]
    upload_name = _step(jobs["drill"], "actions/upload-artifact")["with"]["name"]
    assert upload_name.startswith(download["pattern"].removesuffix("*")) and download["merge-multiple"] is True
    assert f"bst report --matrix {download['path']}" in _runs(report)
    assert _step(report, "actions/upload-artifact")["with"]["path"].rstrip("/") == download["path"]
