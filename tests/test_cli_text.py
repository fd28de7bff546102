"""What the CLI prints of user and guest text is that text, and `bst ssh HOST` opens ssh the one safe way."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lab import cli
from lab.drill.claims import Expectation, claims_table, verdict
from lab.plan import Step
from lab.providers.base import SshTarget

GUEST_TEXT = "sd 2:0:0:0: [sdb] Synchronize Cache(10) failed [/x] [bold]"


def rendered(renderable) -> str:
    console = Console(file=io.StringIO(), width=400, record=True)
    console.print(renderable)
    return console.export_text()


def test_claim_evidence_from_a_guest_keeps_its_brackets():
    text = rendered(claims_table([verdict("md5_after_copy", False, GUEST_TEXT, Expectation.HOLD)]))
    assert GUEST_TEXT in text


def test_a_plan_with_brackets_in_names_commands_and_files_prints_them(monkeypatch: pytest.MonkeyPatch):
    console = Console(file=io.StringIO(), width=400, record=True)
    monkeypatch.setattr(cli, "out", console)
    step = Step(name="[/x] step", stage=0, commands=("[ -e /dev/da1 ] && echo [sdb]",), files={"/etc/[x]": "a=1\n"},
                check="[bold]ok")
    cli._print_plan({"host[/x]": [step]}, "free[bsd]")
    text = console.export_text()
    for part in ("host[/x]", "free[bsd]", "[/x] step", "[ -e /dev/da1 ] && echo [sdb]", "/etc/[x]", "[bold]ok"):
        assert part in text


class FakeLab:
    """A provider whose one host is reachable at ``address``: what `bst ssh` asks of a provider."""

    def __init__(self, address: str, stack: str = "auto"):
        import dataclasses

        from lab.topology import load_topology

        self.address = address
        topology = load_topology(None)
        self.topology = dataclasses.replace(topology, lab=dataclasses.replace(topology.lab, stack=stack))
        self.stack_name = "linux" if stack == "auto" else stack

    def check_host(self, host: str) -> None:
        assert host == "ctrl-a"

    def ssh_target(self, host: str) -> SshTarget:
        return SshTarget(port=40022, key_path=Path("/lab/ssh/id_ed25519"), host=self.address, name=host)


@pytest.fixture
def exec_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_exec(program: str, argv: list[str]) -> None:
        calls.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr("os.execvp", fake_exec)
    return calls


def test_interactive_ssh_uses_the_labs_ssh_command(monkeypatch: pytest.MonkeyPatch, exec_calls):
    monkeypatch.setattr(cli, "_provider", lambda topology, provider, *_: (FakeLab("127.0.0.1"), "qemu", ""))
    result = CliRunner().invoke(cli.app, ["ssh", "ctrl-a"])
    assert result.exit_code == 0, result.output
    argv = exec_calls[0]
    assert argv[:3] == ["ssh", "-F", "/dev/null"], "no ~/.ssh/config may redirect the lab's connection"
    assert "IdentitiesOnly=yes" in argv and argv[-1] == "root@127.0.0.1"


def test_interactive_ssh_refuses_an_address_that_is_not_loopback(monkeypatch: pytest.MonkeyPatch, exec_calls):
    monkeypatch.setattr(cli, "_provider", lambda topology, provider, *_: (FakeLab("192.168.56.10"), "qemu", ""))
    result = CliRunner().invoke(cli.app, ["ssh", "ctrl-a"])
    assert exec_calls == []
    assert "refusing SSH to 192.168.56.10" in str(result.exception)


@pytest.mark.parametrize(("stack", "through_csh"), [("freebsd", True), ("linux", False)])
def test_a_command_given_to_bst_ssh_goes_through_the_stacks_wire(monkeypatch: pytest.MonkeyPatch, stack, through_csh):
    """`bst ssh ctrl-a CMD` means sh on every stack: on FreeBSD root's csh gets the one-line base64 form."""
    import base64

    sent: list[str] = []

    class Connection:
        host, port = "127.0.0.1", 40022

        def run(self, cmd, **kwargs):
            sent.append(cmd)
            return type("Result", (), {"exited": 0, "stdout": "", "stderr": ""})()

        def close(self):
            pass

    monkeypatch.setattr(cli, "_provider", lambda topology, provider, *_: (FakeLab("127.0.0.1", stack), "qemu", ""))
    monkeypatch.setattr("lab.remote.connect", lambda target, timeout: Connection())
    result = CliRunner().invoke(cli.app, ["ssh", "ctrl-a", "echo $(hostname) 2>&1"])
    assert result.exit_code == 0, result.output
    if through_csh:
        encoded = sent[0].split()[2]
        assert sent[0] == f"printf %s {encoded} | b64decode -r | /bin/sh"
        assert "echo $(hostname) 2>&1" in base64.b64decode(encoded).decode()
    else:
        assert sent == ["echo $(hostname) 2>&1"]


@pytest.mark.parametrize(("code", "words"), [(30, "Read-only file system"), (13, "Permission denied"),
                                              (28, "No space left on device")])
def test_an_unwritable_machine_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys, code, words):
    """A read-only or full filesystem met by any verb (here raised where the verb would meet it)."""
    import os

    def verb(**kwargs):
        raise OSError(code, os.strerror(code), "/srv/lab/.lab/beast/vm/ctrl-a/qemu.log")

    monkeypatch.setattr(cli, "app", verb)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: /srv/lab/.lab/beast/vm/ctrl-a/qemu.log: {words}; use a writable " \
                                          "place you own and retry"


def test_an_os_error_that_is_a_bug_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch):
    def verb(**kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/lab/state.json")

    monkeypatch.setattr(cli, "app", verb)
    with pytest.raises(FileNotFoundError):
        cli.main()


def test_a_command_given_to_bst_ssh_that_times_out_is_one_error_line_not_exit_0(monkeypatch: pytest.MonkeyPatch):
    from invoke.exceptions import CommandTimedOut

    class Connection:
        host, port = "127.0.0.1", 40022

        def run(self, cmd, **kwargs):
            raise CommandTimedOut(type("Result", (), {"stdout": "partial\n", "stderr": ""})(), kwargs["timeout"])

        def close(self):
            pass

    monkeypatch.setattr(cli, "_provider", lambda topology, provider, *_: (FakeLab("127.0.0.1", "linux"), "qemu", ""))
    monkeypatch.setattr("lab.remote.connect", lambda target, timeout: Connection())
    result = CliRunner().invoke(cli.app, ["ssh", "ctrl-a", "sleep 99"])
    assert result.exit_code != 0 and "partial" in result.output
    assert str(result.exception).startswith("ctrl-a: `sleep 99` did not finish within its timeout")
