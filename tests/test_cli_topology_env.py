"""BEAST_TOPOLOGY is the topology of every bst command that takes --topology (the option wins), and a value that
names no file is one line naming the variable; `bst doctor --provider auto` is accepted, as auto is elsewhere."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from lab import cli
from lab.errors import LabError
from lab.topology import default_topology_path

DUMMY_ARGUMENTS = {"host": "ctrl-a", "name": "provisioned-paper", "command": None}


def commands_with_topology() -> list[tuple[str, ...]]:
    """The argv (words before the options) of every command and subcommand with a --topology option."""
    found = []

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*words, name))
        if any("--topology" in getattr(p, "opts", ()) for p in command.params):
            arguments = [DUMMY_ARGUMENTS[p.name] for p in command.params
                         if p.param_type_name == "argument" and p.required]
            found.append((*words, *arguments))

    walk(typer.main.get_command(cli.app), ())
    return found


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli.app, list(args), env=env)


def test_every_command_with_topology_is_found():
    names = {words[0] for words in commands_with_topology()}
    assert {"plan", "up", "down", "status", "ssh", "console", "kill", "start", "snapshot", "doctor"} <= names


@pytest.mark.parametrize("words", commands_with_topology(), ids=" ".join)
def test_every_command_with_topology_reads_beast_topology_and_names_it_when_it_is_no_file(words, tmp_path):
    missing = tmp_path / "missing.toml"
    result = invoke(*words, BEAST_TOPOLOGY=str(missing))
    if isinstance(result.exception, LabError):  # bst's main() makes it one line and exit 2
        lines = [str(result.exception)]
    else:
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"environment variable BEAST_TOPOLOGY='{missing}' is not a topology file; set it to a topology" in lines[0]


def test_beast_topology_is_the_plans_topology_and_the_option_wins(tmp_path):
    bad = tmp_path / "lab.toml"
    bad.write_text(default_topology_path().read_text().replace("size_mb = 128", "size_mb = 32", 1))
    result = invoke("plan", "--stack", "freebsd", BEAST_TOPOLOGY=str(bad))
    assert result.exit_code == 2
    assert "disks.f00.size_mb 32 is below the paper's minimum" in result.output
    result = invoke("plan", "--stack", "freebsd", "--json", "--topology", str(default_topology_path()),
                    BEAST_TOPOLOGY=str(bad))
    assert result.exit_code == 0, result.output


def test_an_empty_beast_topology_is_the_papers_lab():
    assert invoke("plan", "--stack", "freebsd", "--json", BEAST_TOPOLOGY="").exit_code == 0


@pytest.mark.parametrize("provider", ["auto", "qemu"])
def test_doctor_accepts_auto_as_every_other_command_does(monkeypatch, provider):
    from pathlib import Path

    from lab.host_readiness import HostFacts

    ready = HostFacts(root=True, kvm_device=False, forced_accel=None, kvm=None, disk_free_gib=50.0,
                      memory_available_gib=16.0, image_cached=True, cache_dir=Path("/c"))
    monkeypatch.setattr("shutil.which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr("lab.host_readiness.host_facts", lambda lab_root: ready)
    result = invoke("doctor", "--provider", provider)
    assert result.exit_code == 0, result.output
    assert "needs is installed" in result.output


def test_doctor_still_refuses_an_unknown_provider():
    result = invoke("doctor", "--provider", "vmware")
    assert result.exit_code != 0
