"""`bst` given hostile but honest input: exit 2, one line on stderr, no traceback, nothing outside touched.

Each case runs the real CLI in a temporary project directory beside a sentinel tree (someone's files a
mistake could reach: the target of a symlink, a home directory) whose listing and mtimes must not change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.topology import default_topology_path

ROOT = Path(__file__).resolve().parents[1]
LAB = "hostile"


def bst_in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what "untouched" is checked against."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def world(tmp_path: Path):
    """A project directory with its own topology (lab name ``hostile``) and a sentinel tree beside it."""
    project, sentinel = tmp_path / "project", tmp_path / "sentinel"
    project.mkdir()
    for name in ("ssh", "disks", "vm", "net", "snapshots/provisioned"):
        (sentinel / LAB / name).mkdir(parents=True)
        (sentinel / LAB / name / "keep.txt").write_text("someone's file\n")
    (sentinel / LAB / "state.json").write_text("{}\n")
    (sentinel / "report.html").write_text("someone's page\n")
    (sentinel / "results.json.d").mkdir()
    topology = project / "lab.toml"
    topology.write_text(default_topology_path().read_text().replace('name = "beast"', f'name = "{LAB}"', 1))
    before = tree(sentinel)
    yield project, sentinel, topology
    assert tree(sentinel) == before, "bst touched a file outside its lab directory"


def one_error_line(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize("linked", [".lab", f".lab/{LAB}"])
@pytest.mark.parametrize("verb", [["down"], ["status"], ["kill", "ctrl-a"], ["snapshot", "delete", "provisioned"],
                                  ["snapshot", "list"]])
def test_a_symlinked_lab_directory_is_refused_by_every_verb(world, linked, verb):
    """Harm 3: `bst down` through a symlinked .lab/<lab> deleted ssh/, disks/, vm/, state.json in its target."""
    project, sentinel, topology = world
    (project / linked).parent.mkdir(parents=True, exist_ok=True)
    (project / linked).symlink_to(sentinel / LAB if linked != ".lab" else sentinel)
    result = bst_in(project, *verb, "--topology", str(topology))
    one_error_line(result, "is a symlink; the lab works only in a real directory")


@pytest.mark.parametrize("as_file", [".lab", f".lab/{LAB}"])
def test_down_on_a_lab_directory_that_is_a_file(world, as_file):
    project, _, topology = world
    (project / as_file).parent.mkdir(parents=True, exist_ok=True)
    (project / as_file).write_text("a file\n")
    result = bst_in(project, "down", "--topology", str(topology))
    one_error_line(result, "is a file, not a lab directory; move it away and retry")
    assert "lab removed" not in result.stdout
    assert (project / as_file).read_text() == "a file\n"


def test_report_into_a_folder_that_is_not_a_run(world):
    """Harm 2: `bst report ~` overwrote ~/report.html."""
    project, sentinel, _ = world
    one_error_line(bst_in(project, "report", str(sentinel)), "is not a run folder")


def test_report_matrix_over_a_folder_without_runs_writes_nothing(world):
    project, sentinel, _ = world
    one_error_line(bst_in(project, "report", "--matrix", str(sentinel)), "no run with a usable results.json")
    assert not (sentinel / "matrix.html").exists()


@pytest.mark.parametrize("content", ["[1, 2]", '{"facts": [], "unexpected": 3}', "{not json", '"text"'])
def test_report_matrix_of_hand_edited_results_writes_nothing(world, content):
    project, _, _ = world
    runs = project / "artifacts"
    (runs / "20260101T000000Z-failover").mkdir(parents=True)
    (runs / "20260101T000000Z-failover" / "results.json").write_text(content)
    one_error_line(bst_in(project, "report", "--matrix"), "no run with a usable results.json")
    assert not (runs / "matrix.html").exists()


def test_report_of_a_run_with_hand_edited_results_is_not_a_traceback(world):
    """The report's purpose is to show a damaged run: it says what is wrong instead of failing."""
    project, _, _ = world
    run = project / "artifacts" / "20260101T000000Z-failover"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"claims": 5, "facts": [1], "failed_steps": {"a": 1},
                                                  "scenario": "[/x] fail[bold]over"}))
    result = bst_in(project, "report", str(run))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "[/x] fail[bold]over" in result.stdout
    assert (run / "report.html").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["kill", "ctrl-a"], f"ctrl-a does not exist in lab {LAB} (never created"),
    (["console", "ctrl-a", "-n", "0"], "Invalid value for '--lines' / '-n'"),
    (["console", "ctrl-a", "-n", "-3"], "Invalid value for '--lines' / '-n'"),
    (["plan", "--stack", ""], "unknown stack ''"),
    (["kill", "ctrl-[/x]"], "no host 'ctrl-[/x]' in lab"),
    (["kill", "[bold]ctrl-a"], "no host '[bold]ctrl-a' in lab"),
    (["snapshot", "restore", "[/x]"], "snapshot name '[/x]' is not allowed"),
    (["snapshot", "restore", "provisioned"], f"no snapshot provisioned in lab {LAB}"),
    (["status", "--provider", "[/x]"], "unknown provider '[/x]'"),
    (["nosuchverb"], "No such command 'nosuchverb'"),
])
def test_silent_accepts_and_markup_are_one_clear_line(world, args, message):
    project, _, topology = world
    extra = [] if args[0] in ("nosuchverb",) else ["--topology", str(topology)]
    one_error_line(bst_in(project, *args, *extra), message)
    assert not (project / ".lab" / LAB / "vm").exists()


def test_doctor_of_an_unknown_provider(world):
    project, _, _ = world
    one_error_line(bst_in(project, "doctor", "--provider", "nonsense"), "unknown provider 'nonsense'")


def test_a_topology_path_with_markup_is_said_as_it_is(world):
    project, _, _ = world
    missing = project / "[/x]" / "lab [bold].toml"
    one_error_line(bst_in(project, "plan", "--topology", str(missing)), f"topology file {missing} does not exist")


def test_a_read_only_lab_directory_is_one_line(world):
    """The lab directory cannot be created: ``.lab`` is a read-only filesystem (as root, where permissions do
    not stop writes, a real read-only tmpfs mount; otherwise a directory without write permission)."""
    project, _, topology = world
    lab_root = project / ".lab"
    lab_root.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(lab_root)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
        undo = ["umount", str(lab_root)]
    else:
        lab_root.chmod(0o500)
        undo = ["chmod", "700", str(lab_root)]
    try:
        result = bst_in(project, "start", "ctrl-a", "--provider", "qemu", "--topology", str(topology))
        one_error_line(result, "cannot write the lab directory")
        assert list(lab_root.iterdir()) == []
    finally:
        subprocess.run(undo, check=True)


def test_a_snapshot_with_a_hand_edited_manifest_is_one_line(world):
    project, _, topology = world
    snapshot = project / ".lab" / LAB / "snapshots" / "provisioned"
    snapshot.mkdir(parents=True)
    (snapshot / "manifest.json").write_text('{"version": 1, "files": ["a"]}')
    one_error_line(bst_in(project, "snapshot", "restore", "provisioned", "--topology", str(topology)),
                   "is not a manifest this version reads")


def test_down_of_a_lab_that_does_not_exist_says_so(world):
    project, _, topology = world
    result = bst_in(project, "down", "--topology", str(topology))
    assert result.returncode == 0 and result.stderr == ""
    assert f"no lab {LAB} at {project / '.lab' / LAB}; nothing to remove" in " ".join(result.stdout.split())


class _Stream:
    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text


def test_a_guests_escape_sequences_reach_a_terminal_written_out_and_a_pipe_as_they_are():
    from lab.cli import to_terminal

    guest = "ok\x1b[2J\x1b]0;owned\x07\rverdict: PASS\n"
    terminal, pipe = _Stream(True), _Stream(False)
    to_terminal(terminal, guest)
    to_terminal(pipe, guest)
    assert "\x1b" not in terminal.text and "\\x1b[2J" in terminal.text and terminal.text.endswith("PASS\n")
    assert pipe.text == guest
