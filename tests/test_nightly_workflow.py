"""The nightly workflow read as data: one job per scenario module x arbitrator mode, each with its own lab,
the guest image cached under its recipe hash, the paper's own FreeBSD 10.3 drilled beside them, and a final
job that builds the matrix from every run folder."""

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
    assert report["needs"] == ["drill", "freebsd"] and report["if"] == "always()"
    download = _step(report, "actions/download-artifact")["with"]
    for job in ("drill", "freebsd"):
        upload_name = _step(jobs[job], "actions/upload-artifact")["with"]["name"]
        assert upload_name.startswith(download["pattern"].removesuffix("*")) and download["merge-multiple"] is True
    assert f"bst report --matrix {download['path']}" in _runs(report)
    assert _step(report, "actions/upload-artifact")["with"]["path"].rstrip("/") == download["path"]


def _index(job: dict, needle: str) -> int:
    return job["steps"].index(_step(job, needle))


def test_the_freebsd_job_enables_kvm_before_anything_boots(jobs):
    freebsd = jobs["freebsd"]
    assert freebsd["runs-on"] == "ubuntu-latest"
    assert _index(freebsd, "99-kvm4all.rules") < _index(freebsd, "image freebsd --download")
    assert _index(freebsd, "99-kvm4all.rules") < _index(freebsd, " up --stack freebsd")
    assert 'echo "BEAST_LAB_ACCEL=kvm" >> "$GITHUB_ENV"' in _step(freebsd, "99-kvm4all.rules")["run"]
    for needle in (" up --stack freebsd", "scenarios/failover.py"):
        assert "BEAST_LAB_ACCEL" in _step(freebsd, needle)["run"], f"sudo drops BEAST_LAB_ACCEL for {needle!r}"


def test_the_prepared_freebsd_image_is_cached_under_its_recipe_hash_and_saved_before_the_drill(jobs):
    freebsd = jobs["freebsd"]
    assert _step(freebsd, "python -m lab.images.freebsd")["id"] == "recipe"
    restore, save = _step(freebsd, "actions/cache/restore@"), _step(freebsd, "actions/cache/save@")
    for cache in (restore, save):
        assert cache["with"]["key"].endswith("${{ steps.recipe.outputs.hash }}")
        assert "freebsd" in cache["with"]["key"]
        assert cache["with"]["path"] == "~/.cache/beast-lab/images"
    assert restore["with"]["key"] != _step(jobs["image"], "actions/cache@")["with"]["key"]
    prepare = _step(freebsd, "image freebsd --download")
    miss = f"steps.{restore['id']}.outputs.cache-hit != 'true'"
    assert prepare["if"] == save["if"] == miss
    assert _index(freebsd, "actions/cache/restore@") < freebsd["steps"].index(prepare) < \
        _index(freebsd, "actions/cache/save@") < _index(freebsd, " up --stack freebsd")
    before = _runs(freebsd)[:_index(freebsd, "--download")]
    assert any("qemu-system-x86" in run and "qemu-utils" in run for run in before)


def test_the_freebsd_job_boots_the_freebsd_stack_on_qemu_and_drills_the_paper_failover(jobs):
    freebsd = jobs["freebsd"]
    up = _step(freebsd, " up --stack freebsd")["run"]
    assert "--provider qemu" in up
    drill = _step(freebsd, "scenarios/failover.py")["run"]
    for option in ("--stack freebsd", "--provider qemu", "--artifacts artifacts"):
        assert option in drill
    assert '--arbitrator "$ARBITRATOR"' in drill and freebsd["env"]["ARBITRATOR"] == "paper"
    down = _step(freebsd, " down --provider qemu")
    assert down["if"] == "always()"
    assert _index(freebsd, " up --stack freebsd") < _index(freebsd, "scenarios/failover.py") < \
        freebsd["steps"].index(down)


def test_the_freebsd_run_folder_is_uploaded_like_the_debian_ones(jobs):
    upload = _step(jobs["freebsd"], "actions/upload-artifact")
    debian = _step(jobs["drill"], "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert "freebsd" in upload["with"]["name"]
    assert upload["with"]["path"] == debian["with"]["path"]
    report = _step(jobs["freebsd"], "report artifacts/latest")
    assert report["run"] == _step(jobs["drill"], "report artifacts/latest")["run"]
