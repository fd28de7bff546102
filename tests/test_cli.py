"""The CLI's contract: plans as JSON or text, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab.topology import default_topology_path


def bst(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120)


def test_bad_topology_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "lab.toml"
    bad.write_text(default_topology_path().read_text().replace('size_mb = 128', 'size_mb = 32', 1))
    result = bst("plan", "--stack", "freebsd", "--topology", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "disks.f00.size_mb 32 is below the paper's minimum for a cache disk; use 64 or more" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["plan", "--stack", "solaris"], "unknown stack 'solaris'; use one of freebsd, linux"),
    (["plan", "--stack", "freebsd", "--host", "ctrl-z"], "--host ctrl-z is not in the plan; use one of"),
    (["plan", "--stack", "freebsd", "--recovery", "clnt-1"], "--recovery clnt-1 is not a controller"),
    (["plan", "--topology", "/nonexistent.toml"], "topology file /nonexistent.toml does not exist"),
    (["status", "--provider", "vmware"], "unknown provider 'vmware'"),
    (["drill", "--scenario", "nope"], "no scenario 'nope'; use one of: failover, freeze, isolate_ctrl_a, kill_ctrl_b"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    result = bst(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("stack", ["freebsd", "linux"])
def test_plan_json_has_every_host_with_named_steps(stack):
    result = bst("plan", "--stack", stack, "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert set(plan) == {"ctrl-a", "ctrl-b", "clnt-1"}
    for steps in plan.values():
        assert steps and all({"name", "files", "commands"} <= set(step) for step in steps)


def test_plan_json_for_one_host():
    result = bst("plan", "--stack", "freebsd", "--host", "clnt-1", "--json")
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)) == ["clnt-1"]


def test_plan_as_text_shows_commands_and_files():
    result = bst("plan", "--stack", "freebsd", "--host", "ctrl-a")
    assert result.returncode == 0, result.stderr
    assert "zpool create -m none ctrl-a_m0 /dev/ada1 /dev/ada2" in result.stdout
    assert "/etc/rc.conf" in result.stdout


def bst_in(cwd, *args: str) -> subprocess.CompletedProcess:
    """bst run from another directory, so the default lab directory is ``cwd/.lab/<name>``."""
    import os
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


@pytest.fixture
def lone_topology(tmp_path):
    """The paper's topology under a lab name of its own: these tests never see another lab."""
    path = tmp_path / "lone.toml"
    path.write_text(default_topology_path().read_text().replace('name = "beast"', 'name = "snapcli"', 1))
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["snapshot", "save", "../etc"], "snapshot name '../etc' is not allowed; use 1-64 letters, digits"),
    (["snapshot", "restore", "a b"], "snapshot name 'a b' is not allowed"),
    (["snapshot", "save", "provisioned"], "lab snapcli is not up"),
    (["snapshot", "restore", "provisioned"], "no snapshot provisioned in lab snapcli"),
    (["snapshot", "delete", "provisioned"], "no snapshot provisioned in lab snapcli"),
])
def test_snapshot_bad_input_is_one_line_and_exit_2(tmp_path, lone_topology, args, message):
    result = bst_in(tmp_path, *args, "--topology", str(lone_topology))
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".lab").exists()


def test_snapshot_list_of_a_lab_without_snapshots(tmp_path, lone_topology):
    result = bst_in(tmp_path, "snapshot", "list", "--topology", str(lone_topology))
    assert result.returncode == 0, result.stderr
    assert "no snapshots in lab snapcli; save one with: bst snapshot save NAME" in result.stdout


def test_rerunning_a_step_without_a_kept_lab_says_what_to_run_first(tmp_path):
    result = bst("drill", "--step", "4", f"--lab-dir={tmp_path / 'lab'}", f"--artifacts={tmp_path / 'a'}",
                 "--", "-p", "no:cacheprovider")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no kept drill in" in result.stdout and "--keep-lab always" in result.stdout
    assert "6 deselected" in result.stdout
    assert "Traceback" not in result.stdout


def test_the_matrix_of_no_runs_is_one_line(tmp_path):
    result = bst("report", "--matrix", str(tmp_path))
    assert result.returncode == 2
    assert f"no run with a results.json under {tmp_path}; run a drill first" in result.stderr


def test_plan_without_a_stack_follows_the_running_labs(monkeypatch):
    from typer.testing import CliRunner

    from lab import cli

    monkeypatch.setattr(cli, "recorded_stack", lambda topo: "freebsd")
    result = CliRunner().invoke(cli.app, ["plan", "--json", "--host", "ctrl-a"])
    assert result.exit_code == 0, result.output
    assert "ctld" in result.output
    monkeypatch.setattr(cli, "recorded_stack", lambda topo: None)
    result = CliRunner().invoke(cli.app, ["plan", "--json", "--host", "ctrl-a"])
    assert result.exit_code == 0 and "ctld" not in result.output and "targetcli" in result.output


def test_no_lab_records_no_stack(tmp_path, monkeypatch):
    from lab import cli
    from lab.topology import load_topology

    monkeypatch.chdir(tmp_path)
    assert cli.recorded_stack(load_topology(None)) is None
