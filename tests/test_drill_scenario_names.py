"""`bst drill --scenario` takes a scenario's name: pytest imports whatever file it is given, so a path out of
scenarios/ would run any code as the drill."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.scenario_names import scenario_names, scenario_target, scenarios_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("given", ["failover", "failover.py", "scenarios/failover.py", "all"])
def test_a_scenario_is_named_or_a_file_of_scenarios(given, monkeypatch):
    monkeypatch.chdir(ROOT)
    expected = scenarios_dir() if given == "all" else scenarios_dir() / "failover.py"
    assert scenario_target(given) == expected


def test_the_names_are_the_scenario_modules():
    assert {"failover", "freeze", "split_brain"} <= set(scenario_names(scenarios_dir()))
    assert "conftest" not in scenario_names(scenarios_dir())


@pytest.mark.parametrize("given", ["../tests/test_cli", "../tests/test_cli.py", "/etc/passwd",
                                   "scenarios/../noxfile.py", "scenarios/conftest.py", "conftest", "Failover",
                                   "failover\n", "./failover"])
def test_anything_else_is_refused_naming_the_scenarios(given, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(LabError, match="use one of: .*failover.*, or all$"):
        scenario_target(given)


def test_a_link_in_scenarios_to_a_file_elsewhere_is_not_a_scenario(tmp_path):
    elsewhere = tmp_path / "evil.py"
    elsewhere.write_text("raise SystemExit('ran')\n")
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "real.py").write_text("")
    (directory / "linked.py").symlink_to(elsewhere)
    assert scenario_names(directory) == ["real"]
    with pytest.raises(LabError, match="no scenario 'linked'; use one of: real, or all"):
        scenario_target("linked", directory)


def test_bst_drill_with_a_file_elsewhere_is_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "test_evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "lab.cli", "drill", "--scenario", str(evil)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"--scenario '{evil}' is not a file of" in result.stderr and "use one of: failover" in result.stderr
    assert not marker.exists()
