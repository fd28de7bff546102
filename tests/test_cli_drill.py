"""`bst drill` has the drill's options as its own: typed, in --help, passed to pytest as the scenarios' conftest
reads them; an unknown option is one line and exit 2; pytest's own options pass only after --; --list shows the
scenarios; from a wheel it finds them and the lab's pytest options; without pytest it says what to install.
No drill runs here: the function that would start pytest is replaced and the argv it was given is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab import cli, cli_drill
from lab.errors import LabError
from lab.scenario_names import scenario_names, scenarios_dir

ROOT = Path(__file__).resolve().parents[1]
FAILOVER = str(ROOT / "scenarios" / "failover.py")


@pytest.fixture
def pytest_runs(monkeypatch):
    """The argv each drill would have run pytest with (nothing runs)."""
    runs: list[list[str]] = []
    monkeypatch.setattr(cli_drill, "run_pytest", lambda argv: runs.append(argv) or 0)
    monkeypatch.delenv("BEAST_TOPOLOGY", raising=False)
    return runs


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli.app, ["drill", *args], env=env)


def test_a_plain_drill_runs_the_failover_scenario_and_nothing_else(pytest_runs):
    assert invoke().exit_code == 0
    assert pytest_runs == [[FAILOVER]]


def test_the_drills_own_options_reach_pytest_as_the_scenarios_conftest_reads_them(pytest_runs, tmp_path):
    topology = tmp_path / "lab.toml"
    topology.write_text("")
    result = invoke("--scenario", "freeze", "--arbitrator", "paper,cluster", "--keep-lab", "always",
                    "--inject", "corrupt-copy,pool-error", "--snapshot", "mine", "--save-snapshot",
                    "--topology", str(topology), "--provider", "qemu", "--stack", "linux",
                    "--lab-dir", str(tmp_path / "lab"), "--artifacts", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert pytest_runs == [[
        str(ROOT / "scenarios" / "freeze.py"), "--arbitrator=paper,cluster", "--keep-lab=always",
        "--inject=corrupt-copy,pool-error", "--snapshot=mine", f"--topology={topology}", "--provider=qemu",
        "--stack=linux", f"--lab-dir={tmp_path / 'lab'}", f"--artifacts={tmp_path / 'runs'}", "--save-snapshot"]]


def test_a_step_and_pytests_own_options_after_the_double_dash(pytest_runs):
    assert invoke("--step", "4", "--", "-x", "--junitxml=j.xml").exit_code == 0
    assert pytest_runs == [[FAILOVER, "--step=4", "-x", "--junitxml=j.xml"]]


def test_beast_topology_is_the_drills_topology_too(pytest_runs, tmp_path):
    topology = tmp_path / "mine.toml"
    topology.write_text("")
    assert invoke(BEAST_TOPOLOGY=str(topology)).exit_code == 0
    assert pytest_runs == [[FAILOVER, f"--topology={topology}"]]


@pytest.mark.parametrize("args", [["--bogus"], ["-x"], ["--keep-lab", "sometimes"], ["--junitxml=j.xml"]])
def test_an_option_the_drill_does_not_have_is_refused_and_nothing_runs(pytest_runs, args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert pytest_runs == []


def test_bst_drill_bogus_is_one_line_on_stderr_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "lab.cli", "drill", "--bogus"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No such option: --bogus" in lines[0] and "drill --help)" in lines[0], lines


def test_an_unknown_injection_is_refused_naming_the_ones_we_have(pytest_runs):
    result = invoke("--inject", "corrupt-copy,melt-disk")
    assert isinstance(result.exception, LabError) and pytest_runs == []
    assert "--inject 'corrupt-copy,melt-disk' names no injection we have; use a comma list of corrupt-copy" in str(
        result.exception)


def test_list_shows_every_scenario_with_its_one_line_doc_and_runs_nothing(pytest_runs):
    result = CliRunner().invoke(cli.app, ["drill", "--list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in scenario_names(scenarios_dir()):
        assert name in result.output
    assert "kill-ctrl-a" in result.output and "ctrl-a loses both of its lab cables" in result.output
    assert pytest_runs == []


def test_without_pytest_it_says_what_to_install(pytest_runs, monkeypatch):
    real = cli_drill.importlib.util.find_spec
    monkeypatch.setattr(cli_drill.importlib.util, "find_spec", lambda name: None if name == "pytest" else real(name))
    result = invoke()
    assert isinstance(result.exception, LabError) and pytest_runs == []
    assert str(result.exception) == cli_drill.PYTEST_MISSING
    assert "pip install 'beast-lab[test,report]'" in cli_drill.PYTEST_MISSING


def test_from_a_wheel_without_a_conftest_beside_scenarios_the_options_come_as_a_plugin(pytest_runs, monkeypatch,
                                                                                        tmp_path):
    """An installed wheel has site-packages/scenarios and no project conftest.py: lab.pytest_options is loaded."""
    installed = tmp_path / "site-packages" / "scenarios"
    installed.mkdir(parents=True)
    for name in ("conftest.py", "failover.py"):
        (installed / name).write_text((ROOT / "scenarios" / name).read_text())
    monkeypatch.setattr("lab.scenario_names.scenarios_dir", lambda: installed)
    assert invoke("--arbitrator", "paper").exit_code == 0
    assert pytest_runs == [["-p", "lab.pytest_options", "--rootdir", str(installed), str(installed / "failover.py"),
                            "--arbitrator=paper"]]


def test_scenarios_that_are_not_there_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr("lab.scenario_names.__file__", str(tmp_path / "lab" / "scenario_names.py"))
    with pytest.raises(LabError, match="the drill's scenarios are not at .*; run bst from a checkout"):
        scenarios_dir()


def test_keep_lab_offers_the_orchestrators_policies():
    from lab.drill.orchestrator import KEEP_POLICIES

    assert tuple(cli_drill.KeepLab) == KEEP_POLICIES
