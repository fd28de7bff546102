"""The executor against fake hosts: stage order, skipping what is done, failures that say what broke."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from lab.executor import (
    FabricRunner,
    Status,
    StepEvent,
    StepFailed,
    apply_plan,
    files_match_command,
    write_file_command,
)
from lab.plan import Step
from lab.result import CommandResult


class FakeHost:
    """An in-memory shell: ``do X`` marks X done (``fail X`` exits 1), ``test X`` exits 0 when X is done."""

    log: list[tuple[str, str]]

    def __init__(self, name: str, log: list[tuple[str, str]], delay: float = 0.0) -> None:
        self.name = name
        self.done: set[str] = set()
        self.log = log
        self.delay = delay
        self.lock = threading.Lock()

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        verb, _, what = cmd.partition(" ")
        if verb == "do":
            time.sleep(self.delay)
            with self.lock:
                self.done.add(what)
                self.log.append((self.name, what))
            return CommandResult(cmd, 0, "", "", self.delay)
        if verb == "test":
            return CommandResult(cmd, 0 if what in self.done else 1, "", "", 0.0)
        if verb == "fail":
            return CommandResult(cmd, 3, "", f"warning: noise\nerror: {what} is broken\n", 0.0)
        raise AssertionError(f"fake shell does not know {cmd!r}")


class LocalRunner:
    """Runs commands in a local shell: for the file-writing commands, which must work in a real sh."""

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        started = time.monotonic()
        done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(cmd, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def step(name: str, stage: int = 0, verify: str | None = None) -> Step:
    return Step(name=name, commands=(f"do {name}",), check=f"test {name}", verify=verify, stage=stage)


@pytest.fixture
def log() -> list[tuple[str, str]]:
    return []


def test_stages_run_in_order_across_hosts(log):
    plan = {
        "a": [step("a-late", stage=2), step("a-first", stage=0)],
        "b": [step("b-middle", stage=1)],
    }
    runners = {"a": FakeHost("a", log), "b": FakeHost("b", log)}
    outcomes = apply_plan(plan, runners)
    assert [what for _, what in log] == ["a-first", "b-middle", "a-late"]
    assert [o.step for o in outcomes] == ["a-first", "b-middle", "a-late"]
    assert all(o.status is Status.RAN for o in outcomes)


def test_steps_of_one_host_keep_their_order(log):
    plan = {"a": [step("one"), step("two"), step("three")]}
    apply_plan(plan, {"a": FakeHost("a", log)})
    assert log == [("a", "one"), ("a", "two"), ("a", "three")]


def test_step_already_done_is_skipped(log):
    host = FakeHost("a", log)
    host.done.add("pool")
    outcomes = apply_plan({"a": [step("pool"), step("zvol")]}, {"a": host})
    assert [(o.step, o.status) for o in outcomes] == [("pool", Status.SKIPPED), ("zvol", Status.RAN)]
    assert log == [("a", "zvol")]


def test_second_apply_skips_every_step(log):
    plan = {"a": [step("x"), step("y", stage=1)], "b": [step("z", stage=1)]}
    runners = {"a": FakeHost("a", log), "b": FakeHost("b", log)}
    apply_plan(plan, runners)
    log.clear()
    again = apply_plan(plan, runners)
    assert log == []
    assert {o.status for o in again} == {Status.SKIPPED}


def test_failure_names_host_step_command_exit_code_and_stderr_tail(log):
    broken = Step(name="create pool", commands=("do first", "fail zpool"), check="test pool")
    plan = {"a": [broken, step("after")]}
    with pytest.raises(StepFailed) as caught:
        apply_plan(plan, {"a": FakeHost("a", log)})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("a: step 'create pool' failed")
    assert "`fail zpool`" in message and "exited 3" in message and "error: zpool is broken" in message
    assert [(o.step, o.status) for o in caught.value.outcomes] == [("create pool", Status.FAILED)]
    assert ("a", "after") not in log


def test_verify_failure_fails_the_step(log):
    plan = {"a": [step("login", verify="fail session")]}
    with pytest.raises(StepFailed, match=r"a: step 'login' failed: verify `fail session` exited 3"):
        apply_plan(plan, {"a": FakeHost("a", log)})
    assert log == [("a", "login")]


def test_failure_stops_later_stages_but_lets_the_stage_finish(log):
    plan = {
        "a": [Step(name="bad", commands=("fail x",), check="test bad")],
        "b": [step("b-same-stage"), step("b-next-stage", stage=1)],
    }
    with pytest.raises(StepFailed) as caught:
        apply_plan(plan, {"a": FakeHost("a", log), "b": FakeHost("b", log)})
    assert log == [("b", "b-same-stage")]
    assert {(o.host, o.status) for o in caught.value.outcomes} == {("a", Status.FAILED), ("b", Status.RAN)}


def test_hosts_of_a_stage_run_in_parallel(log):
    delay = 0.3
    plan = {name: [step(f"{name}-work")] for name in ("a", "b", "c")}
    runners = {name: FakeHost(name, log, delay=delay) for name in plan}
    started = time.monotonic()
    apply_plan(plan, runners)
    assert time.monotonic() - started < 2 * delay
    assert len(log) == 3


def test_an_unreachable_host_fails_the_step_saying_why():
    class Unreachable:
        def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
            raise OSError("connection refused")

    with pytest.raises(StepFailed, match=r"a: step 'x' failed: command `do x` could not run: OSError: connection"):
        apply_plan({"a": [step("x")]}, {"a": Unreachable()})


def test_a_bug_in_a_runner_is_not_taken_for_a_failed_step():
    class Broken:
        def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
            raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):
        apply_plan({"a": [step("x")]}, {"a": Broken()})


def test_missing_runner_is_one_line_error():
    with pytest.raises(Exception, match="no connection to b"):
        apply_plan({"a": [], "b": [step("x")]}, {"a": FakeHost("a", [])})


class Labelled:
    """A runner that remembers the label of every command it was given."""

    def __init__(self, host: FakeHost) -> None:
        self.host, self.sent = host, []

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        self.sent.append((label, cmd))
        return self.host.run(cmd, timeout, label)


def test_every_command_is_labelled_with_plan_host_step_and_phase(log):
    runner = Labelled(FakeHost("a", log))
    apply_plan({"a": [step("make pool", verify="test make pool")]}, {"a": runner}, label="provision")
    assert runner.sent == [("provision:a:make pool:check", "test make pool"),
                           ("provision:a:make pool:command", "do make pool"),
                           ("provision:a:make pool:verify", "test make pool")]


def test_on_step_sees_each_host_start_and_finish_each_step_in_run_order(log):
    events: list[StepEvent] = []
    host_b = FakeHost("b", log)
    host_b.done.add("b-done")
    plan = {"a": [step("a-late", stage=1), step("a-first"), Step(name="a-bad", commands=("fail x",), check="test a-bad",
                                                                  stage=2)],
            "b": [step("b-done")]}
    with pytest.raises(StepFailed):
        apply_plan(plan, {"a": FakeHost("a", log), "b": host_b}, on_step=events.append)
    seen = sorted((e.host, e.index, e.total, e.step, e.status) for e in events)
    assert seen == sorted([
        ("a", 1, 3, "a-first", "started"), ("a", 1, 3, "a-first", "ran"),
        ("a", 2, 3, "a-late", "started"), ("a", 2, 3, "a-late", "ran"),
        ("a", 3, 3, "a-bad", "started"), ("a", 3, 3, "a-bad", "failed"),
        ("b", 1, 1, "b-done", "started"), ("b", 1, 1, "b-done", "skipped")])
    finished = [e for e in events if e.outcome is not None and e.host == "a"]
    assert [e.step for e in finished] == ["a-first", "a-late", "a-bad"]
    assert "exited 3" in finished[-1].outcome.error


@pytest.mark.parametrize(
    "content",
    [
        "plain text\n",
        "no trailing newline",
        "quotes ' \" $HOME `x` \\ and a line\nEOF\n",
        "",
        "carriage\r\nreturn\n",
    ],
)
def test_written_files_have_the_exact_content_and_then_match(tmp_path: Path, content: str):
    path = str(tmp_path / "deep" / "dir" / "file.conf")
    runner = LocalRunner()
    assert runner.run(files_match_command({path: content}), 10).exit_code != 0
    assert runner.run(write_file_command(path, content), 10).ok
    assert Path(path).read_bytes() == content.encode()
    assert runner.run(files_match_command({path: content}), 10).ok
    assert not runner.run(files_match_command({path: content + "x"}), 10).ok


def test_step_with_files_is_skipped_only_when_files_and_check_agree(tmp_path: Path):
    path = tmp_path / "etc" / "beast.rules"
    marker = tmp_path / "applied"
    files_step = Step(
        name="rules",
        files={str(path): "rule one\n"},
        commands=(f"touch {marker}",),
        check=f"test -e {marker}",
    )
    runner = LocalRunner()
    first = apply_plan({"h": [files_step]}, {"h": runner})
    second = apply_plan({"h": [files_step]}, {"h": runner})
    path.write_text("edited by hand\n")
    third = apply_plan({"h": [files_step]}, {"h": runner})
    assert [o.status for o in first + second + third] == [Status.RAN, Status.SKIPPED, Status.RAN]
    assert path.read_text() == "rule one\n"


def test_fabric_runner_reports_a_timeout_as_no_exit_code():
    from invoke.exceptions import CommandTimedOut
    from invoke.runners import Result

    class HangingConnection:
        host, port = "127.0.0.1", 2222
        closed = False

        def run(self, cmd, **kwargs):
            assert kwargs["warn"] and kwargs["hide"] and kwargs["timeout"] == 5
            raise CommandTimedOut(Result(stdout="partial", stderr="", exited=-1, command=cmd), timeout=5)

        def close(self) -> None:
            self.closed = True

    connection = HangingConnection()
    result = FabricRunner(connection, host="ctrl-a").run("sleep 100", timeout=5, label="wait")
    assert (result.exit_code, result.timed_out, result.stdout) == (None, True, "partial")
    assert (result.host, result.command, result.label) == ("ctrl-a", "sleep 100", "wait")
    assert not result.ok and result.ending.startswith("did not finish within its timeout") and connection.closed


def test_fabric_runner_closes_a_lost_connection_and_says_why():
    class LostConnection:
        host, port = "127.0.0.1", 2222
        closed = False

        def run(self, cmd, **kwargs):
            raise EOFError("connection reset")

        def close(self) -> None:
            self.closed = True

    connection = LostConnection()
    result = FabricRunner(connection).run("true", timeout=5)
    assert (result.exit_code, result.timed_out, result.stderr) == (None, False, "EOFError: connection reset")
    assert result.ending == "could not run" and connection.closed


def test_reboot_step_waits_until_its_check_passes(monkeypatch):
    import lab.executor as executor

    monkeypatch.setattr(executor, "REBOOT_POLL_INTERVAL_S", 0.01)

    class RebootingHost:
        def __init__(self) -> None:
            self.booted = False
            self.polls = 0

        def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
            if cmd == "shutdown -r now":
                raise OSError("connection reset by peer")
            if cmd == "booted since export":
                self.polls += 1
                if self.polls < 3:
                    raise OSError("host is down")
                return CommandResult(cmd, 0 if self.polls > 3 else 1, "", "", 0.0)
            raise AssertionError(cmd)

    host = RebootingHost()
    reboot = Step(name="restart", commands=("shutdown -r now",), check="booted since export", reboot=True)
    outcomes = apply_plan({"a": [reboot]}, {"a": host})
    assert outcomes[0].status is Status.RAN and host.polls == 4  # one before the reboot, three after


def test_reboot_step_that_never_comes_back_fails(monkeypatch):
    import lab.executor as executor

    monkeypatch.setattr(executor, "REBOOT_POLL_INTERVAL_S", 0.01)
    reboot = Step(name="reboot", commands=("do reboot",), check="test never", reboot=True)
    with pytest.raises(StepFailed, match="step 'reboot' failed: the host did not pass `test never` within"):
        apply_plan({"a": [reboot]}, {"a": FakeHost("a", [])}, reboot_timeout=0.1)


def test_reboot_step_of_a_powered_off_host_fails_at_once(monkeypatch):
    """A host killed during its reboot can never pass the check: the step says so without waiting it out."""
    import lab.executor as executor

    monkeypatch.setattr(executor, "REBOOT_POLL_INTERVAL_S", 0.01)
    asked: list[str] = []

    def powered_off(host: str) -> bool:
        asked.append(host)
        return len(asked) >= 2

    reboot = Step(name="reboot", commands=("do reboot",), check="test never", reboot=True)
    started = time.monotonic()
    with pytest.raises(StepFailed, match="a: step 'reboot' failed: the host was powered off during its reboot"):
        apply_plan({"a": [reboot]}, {"a": FakeHost("a", [])}, reboot_timeout=60, powered_off=powered_off)
    assert time.monotonic() - started < 5 and asked == ["a", "a"]


def test_fabric_runner_sends_the_stacks_wire_and_reports_the_readable_command():
    from invoke.runners import Result

    from lab.session import LabSession
    from lab.stacks.freebsd import FreeBSDStack
    from lab.wire import through_csh

    class RecordingConnection:
        host, port = "127.0.0.1", 2222
        sent: list[str] = []

        def run(self, cmd, **kwargs):
            self.sent.append(cmd)
            return Result(stdout="ok\n", stderr="", exited=0, command=cmd)

        def close(self) -> None:
            pass

    connection = RecordingConnection()
    readable = 'zpool list -H -o name tank >/dev/null 2>&1 && echo "$(hostname)"'
    result = FabricRunner(connection, wire=through_csh).run(readable, timeout=5)
    assert connection.sent == [through_csh(readable)] and result.command == readable and result.stdout == "ok\n"
    session = LabSession(topo=None, provider=None, stack=FreeBSDStack())
    session._runners["ctrl-a"] = FabricRunner(connection, wire=session.stack.wire)
    assert session.run("ctrl-a", "zpool status -v").command == "zpool status -v"
    assert connection.sent[-1] == through_csh("zpool status -v")


def test_session_runners_take_the_stacks_wire(monkeypatch):
    from lab import remote
    from lab.session import LabSession
    from lab.stacks.freebsd import FreeBSDStack

    class Provider:
        def ssh_target(self, host):
            return host

    monkeypatch.setattr(remote, "connect", lambda target, timeout: object())
    stack = FreeBSDStack()
    assert LabSession(topo=None, provider=Provider(), stack=stack).runner("ctrl-a").wire == stack.wire
