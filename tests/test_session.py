"""LabSession against fake hosts: an unreachable host is a result, a bug is not; every command is written once."""

from __future__ import annotations

import json
from pathlib import Path

import paramiko
import pytest

from lab.errors import LabError
from lab.executor import Status, StepEvent, StepFailed
from lab.plan import Step
from lab.record import RunRecord
from lab.remote import RemoteError
from lab.result import CommandResult
from lab.session import LabSession
from lab.stacks import get_stack
from lab.topology import load_topology


class FakeHost:
    """``do X`` marks X done, ``test X`` exits 0 once X is done, ``fail X`` exits 1."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.connection = self

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        verb, _, what = cmd.partition(" ")
        if verb == "do":
            self.done.add(what)
            return CommandResult(cmd, 0, f"{what} done\n", "", 0.01, label=label)
        if verb == "test":
            return CommandResult(cmd, 0 if what in self.done else 1, "", "", 0.01, label=label)
        if verb == "fail":
            return CommandResult(cmd, 1, "", f"{what} is broken\n", 0.01, label=label)
        raise AssertionError(f"the fake host does not know {cmd!r}")

    def close(self) -> None:
        pass


class Raising:
    """A runner whose every command raises ``error`` (as a lost SSH connection, or a bug, would)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.connection = self
        self.closed = False

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        raise self.error

    def close(self) -> None:
        self.closed = True


def session_with(tmp_path: Path, **runners) -> LabSession:
    session = LabSession(topo=None, provider=None, stack=get_stack("linux"), record=RunRecord.create(tmp_path, "t"))
    session._runners.update(runners)
    return session


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("error", [OSError("No route to host"), EOFError("connection closed"),
                                   paramiko.SSHException("Error reading SSH protocol banner"),
                                   TimeoutError("timed out"), RemoteError("cannot SSH to ctrl-a")])
def test_an_unreachable_host_is_a_result_without_an_exit_code(tmp_path, error):
    runner = Raising(error)
    session = session_with(tmp_path, **{"ctrl-a": runner})
    result = session.run("ctrl-a", "zpool list", 30, "pools")
    assert (result.exit_code, result.timed_out, result.ok) == (None, False, False)
    assert result.stderr == f"{type(error).__name__}: {error}" and (result.host, result.label) == ("ctrl-a", "pools")
    assert runner.closed and "ctrl-a" not in session._runners  # the next command connects afresh
    [written] = lines(session.record.folder / "commands.jsonl")
    assert (written["exit_code"], written["stderr"], written["label"]) == (None, result.stderr, "pools")


@pytest.mark.parametrize("bug", [KeyError("ctrl-a"), TypeError("run() takes 2 positional arguments"),
                                 AttributeError("'NoneType' object has no attribute 'run'")])
def test_a_bug_propagates_instead_of_reading_as_an_unreachable_host(tmp_path, bug):
    session = session_with(tmp_path, **{"ctrl-a": Raising(bug)})
    with pytest.raises(type(bug)):
        session.run("ctrl-a", "zpool list", 30, "pools")


def test_a_command_is_recorded_once_with_its_host_and_label(tmp_path):
    session = session_with(tmp_path, **{"ctrl-a": FakeHost()})
    result = session.run("ctrl-a", "do pool", 30, "create")
    assert (result.exit_code, result.stdout, result.host, result.label) == (0, "pool done\n", "ctrl-a", "create")
    assert result.started >= session.record.started
    [written] = lines(session.record.folder / "commands.jsonl")
    assert written == result.to_json()
    assert (session.record.folder / "hosts" / "ctrl-a.log").read_text() == "$ do pool   # [0] 0.01s\npool done\n"


def test_apply_writes_each_command_once_and_each_step_outcome_to_the_plan_file(tmp_path):
    session = session_with(tmp_path, **{"ctrl-a": FakeHost(), "ctrl-b": FakeHost()})
    plan = {"ctrl-a": [Step(name="create pool", commands=("do pool",), check="test pool")],
            "ctrl-b": [Step(name="target", commands=("do target",), check="test target", verify="test target")]}
    session.apply(plan, "provision")
    commands = lines(session.record.folder / "commands.jsonl")
    assert sorted((c["label"], c["command"]) for c in commands) == [
        ("provision:ctrl-a:create pool:check", "test pool"), ("provision:ctrl-a:create pool:command", "do pool"),
        ("provision:ctrl-b:target:check", "test target"), ("provision:ctrl-b:target:command", "do target"),
        ("provision:ctrl-b:target:verify", "test target")]
    steps = lines(session.record.folder / "plan-provision.jsonl")
    assert sorted((s["host"], s["step"], s["stage"], s["status"], s["error"]) for s in steps) == [
        ("ctrl-a", "create pool", 0, "ran", ""), ("ctrl-b", "target", 0, "ran", "")]
    assert not any("command" in s or "cmd" in s or "stdout" in s for s in steps)


def test_apply_passes_step_events_through_and_records_a_failure(tmp_path):
    session = session_with(tmp_path, **{"ctrl-a": FakeHost()})
    events: list[StepEvent] = []
    plan = {"ctrl-a": [Step(name="pool", commands=("do pool",), check="test pool"),
                       Step(name="share", commands=("fail share",), check="test share")]}
    with pytest.raises(StepFailed, match="ctrl-a: step 'share' failed: command `fail share` exited 1"):
        session.apply(plan, "provision", on_step=events.append)
    assert [(e.index, e.total, e.step, e.status) for e in events] == [
        (1, 2, "pool", "started"), (1, 2, "pool", "ran"), (2, 2, "share", "started"), (2, 2, "share", "failed")]
    steps = lines(session.record.folder / "plan-provision.jsonl")
    assert [(s["step"], s["status"]) for s in steps] == [("pool", Status.RAN), ("share", Status.FAILED)]
    assert "share is broken" in steps[-1]["error"]


class LostConnection:
    """A runner whose SSH transport died with its host: like remote.run, it answers without an exit code."""

    def __init__(self) -> None:
        self.connection = self
        self.closed = False

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        return CommandResult(cmd, None, "", "SSHException: No existing session", 0.01, label=label)

    def close(self) -> None:
        self.closed = True


def test_a_host_that_answered_without_an_exit_code_gets_a_fresh_connection_next_time(tmp_path):
    lost = LostConnection()
    session = session_with(tmp_path, **{"ctrl-a": lost})
    assert session.run("ctrl-a", "true").exit_code is None
    assert lost.closed and "ctrl-a" not in session._runners, "a rebooted host would never be reached again"


def test_a_command_that_timed_out_keeps_its_runner(tmp_path):
    class Slow(LostConnection):
        def run(self, cmd, timeout, label=""):
            return CommandResult(cmd, None, "", "", timeout, timed_out=True, label=label)

    slow = Slow()
    session = session_with(tmp_path, **{"ctrl-a": slow})
    assert session.run("ctrl-a", "sleep 99", timeout=1).timed_out
    assert session._runners["ctrl-a"] is slow


def test_a_host_the_provider_says_is_not_running_is_a_result_without_an_exit_code(tmp_path):
    class Stopped:
        def ssh_target(self, host):
            raise LabError(f"{host} is not running; start the lab with `bst up` (or `bst start {host}`)")

    session = LabSession(load_topology(), Stopped(), get_stack("linux"), RunRecord.create(tmp_path, "t"))
    result = session.run("ctrl-a", "dmesg", 30, "dmesg-end")
    assert result.exit_code is None and "ctrl-a is not running" in result.stderr
