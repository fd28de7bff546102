"""A run folder is data: what `bst report` reads from it, links to and prints is its text, never a path to
follow, a link to run or a command for the terminal; what it writes is only a file it wrote itself."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from rich.console import Console

from lab import cli, cli_console
from lab.errors import LabError
from lab.providers.snapshot import Manifest
from lab.report import load_run, render_report, render_summary
from lab.report.matrix import collect, matrix_table, render_matrix
from lab.runfolder_io import MAX_READ_BYTES
from lab.terminal import printable

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "tests" / "fixtures" / "runs"
COMPLETE = "20240424T230640Z-failover"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\x00\x7f"
"""An OSC title change, a CSI clear-screen, a C1 CSI, NUL and DEL: what a guest's output may carry."""


def a_run(tmp_path: Path, name: str = COMPLETE) -> Path:
    folder = tmp_path / name
    shutil.copytree(RUNS / name, folder)
    return folder


def edit_results(folder: Path, edit) -> None:
    path = folder / "results.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def terminal_text(print_to) -> str:
    """What reaches the terminal, escape codes included (a recorded console would drop them)."""
    stream = io.StringIO()
    print_to(Console(file=stream, width=300, force_terminal=True, color_system=None))
    return stream.getvalue()


def test_printable_shows_controls_as_escapes_and_keeps_text():
    assert printable("a\x1b[31mb\x9bc\x00\x7f") == "a\\x1b[31mb\\x9bc\\x00\\x7f"
    assert printable("line\n\tindented é [sdb]") == "line\n\tindented é [sdb]"


def test_guest_output_in_a_claim_reaches_the_terminal_as_text(tmp_path: Path):
    folder = a_run(tmp_path)

    def hostile(data):
        data["claims"][0].update(evidence=f"dmesg: {ESCAPES}", detail=ESCAPES)
        data["steps"] = [{"index": 0, "name": f"copy{ESCAPES}", "status": "failed", "duration_s": 1.0,
                          "error": ESCAPES}]
        data["scenario"] = f"fail{ESCAPES}over"

    edit_results(folder, hostile)
    shown = terminal_text(lambda console: render_summary(folder, console))
    assert "\x1b]" not in shown and "\x9b" not in shown and "\x00" not in shown and "\x07" not in shown
    assert "\\x1b]0;pwned\\x07" in shown


def test_a_matrix_cell_reaches_the_terminal_as_text(tmp_path: Path):
    folder = a_run(tmp_path)
    edit_results(folder, lambda data: data.update(fault=f"kill{ESCAPES}"))
    shown = terminal_text(lambda console: console.print(matrix_table(collect([folder]))))
    assert "\x1b]" not in shown and "\x9b" not in shown and "\\x1b]0;pwned" in shown


def test_a_snapshot_manifest_reaches_the_terminal_as_text(monkeypatch: pytest.MonkeyPatch):
    manifest = Manifest.from_json({
        "name": "provisioned", "created_utc": f"2026{ESCAPES}", "provider": "qemu", "lab": "beast",
        "lab_dir": "/x", "topology_source": f"paper{ESCAPES}.toml", "topology_hash": "ab" * 32,
        "image_name": f"debian{ESCAPES}", "image_hash": "cd" * 32, "accel": "tcg", "disk_cache": "none",
        "hosts": ["ctrl-a"], "files": {"ctrl-a.qcow2": 10}, "argv": {"ctrl-a": ["qemu"]}, "timings": {},
        "version": 1})
    lab = SimpleNamespace(snapshots=lambda: [manifest], topology=SimpleNamespace(lab=SimpleNamespace(name="beast")))
    monkeypatch.setattr(cli, "_snapshot_provider", lambda *args: lab)
    shown = terminal_text(lambda console: (monkeypatch.setattr(cli, "out", console), cli.snapshot_list()))
    assert "\x1b]" not in shown and "\x9b" not in shown and "debian\\x1b]0;pwned" in shown


def test_an_error_line_shows_controls_as_escapes(monkeypatch: pytest.MonkeyPatch):
    shown = terminal_text(lambda console: (monkeypatch.setattr(cli_console, "err", console),
                                           cli_console.error_line(f"no run folder at x{ESCAPES}")))
    assert "\x1b]" not in shown and "x\\x1b]0;pwned" in shown


@pytest.mark.parametrize("name", ["report.html", "throughput.png"])
def test_a_hard_linked_report_file_is_replaced_and_the_other_name_keeps_its_text(tmp_path: Path, name: str):
    """`bst report` wrote through a hard link: the other name, outside the run folder, got the report."""
    folder = a_run(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    os.link(victim, folder / name)
    render_report(folder)
    assert victim.read_text() == "keep\n"
    assert (folder / name).stat().st_nlink == 1 and (folder / name).read_bytes() != b"keep\n"


@pytest.mark.parametrize("make", [os.mkdir, os.mkfifo])
def test_a_report_html_that_is_not_a_file_is_one_line(tmp_path: Path, make):
    folder = a_run(tmp_path)
    make(folder / "report.html")
    with pytest.raises(LabError, match=r"report.html: it is a (directory|FIFO), not a file bst wrote"):
        render_report(folder)


def test_a_matrix_html_bst_did_not_write_is_refused(tmp_path: Path):
    run = a_run(tmp_path)
    (tmp_path / "matrix.html").write_text("someone's page\n")
    with pytest.raises(LabError, match="refusing to overwrite .*matrix.html: bst did not write it"):
        render_matrix([run], tmp_path)
    assert (tmp_path / "matrix.html").read_text() == "someone's page\n"


def test_a_matrix_html_bst_wrote_is_rewritten_and_its_hard_link_kept(tmp_path: Path):
    run = a_run(tmp_path)
    render_matrix([run], tmp_path)
    published = tmp_path.parent / f"{tmp_path.name}-published.html"
    os.link(tmp_path / "matrix.html", published)
    before = published.read_text()
    edit_results(run, lambda data: data.update(fault="split-brain"))
    render_matrix([run], tmp_path)
    assert published.read_text() == before and "split-brain" in (tmp_path / "matrix.html").read_text()


def test_report_matrix_over_a_foreign_matrix_html_is_one_line(tmp_path: Path):
    runs = tmp_path / "artifacts"
    a_run(runs)
    (runs / "matrix.html").write_text("someone's page\n")
    result = subprocess.run([sys.executable, "-m", "lab.cli", "report", "--matrix", str(runs)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "bst did not write it" in result.stderr
    assert (runs / "matrix.html").read_text() == "someone's page\n"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def links_of(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.hrefs


HOSTILE_NAMES = ["javascript:alert(1)", "data:text,hi", "//evil.example/x", "a?b#c", "%2e%2e"]


def test_a_file_named_like_a_url_is_linked_as_a_file_of_the_run_folder(tmp_path: Path):
    """A file called ``javascript:alert(1)`` became a clickable javascript: link."""
    folder = a_run(tmp_path)
    for name in HOSTILE_NAMES:
        (folder / "hosts" / name.replace("/", "_")).write_text("x\n")
    (folder / "javascript:alert(1)").write_text("x\n")
    base = folder.resolve().as_uri() + "/report.html"
    hrefs = links_of(render_report(folder))
    assert hrefs and all(href.startswith("./") for href in hrefs)
    for href in hrefs:
        target = urljoin(base, href)
        path = Path(unquote(urlsplit(target).path))
        assert urlsplit(target).scheme == "file" and path.is_file() and folder.resolve() in path.parents, href


def test_a_run_folder_named_like_a_url_is_linked_as_a_folder_from_the_matrix(tmp_path: Path):
    run = a_run(tmp_path, COMPLETE)
    hostile = run.rename(tmp_path / "javascript:alert(1)")
    path, _ = render_matrix([hostile], tmp_path)
    assert links_of(path) == ["./javascript%3Aalert%281%29/report.html"]


def test_links_and_other_non_files_are_named_in_the_report_not_linked(tmp_path: Path):
    folder = a_run(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("password\n")
    (folder / "hosts" / "leak.log").symlink_to(secret)
    (folder / "outside").symlink_to(tmp_path)
    os.mkfifo(folder / "hosts" / "pipe.log")
    page = render_report(folder).read_text()
    assert not [href for href in links_of(folder / "report.html") if "leak" in href or "pipe" in href
                or "outside" in href]
    assert "hosts/leak.log (a symlink)" in page and "hosts/pipe.log (a FIFO)" in page and "outside (a symlink)" in page
    assert "password" not in page


@pytest.fixture
def no_hang():
    """A FIFO made `bst report` block forever: a test that blocks fails after a few seconds instead."""
    def timed_out(*_):
        raise TimeoutError("bst report blocked")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


SECRET = "the secret text of a file outside the run folder"
EVIDENCE = ["results.json", "events.jsonl", "probe.log", "zpool/before.txt", "zpool"]


@pytest.mark.parametrize("name", EVIDENCE)
def test_a_symlinked_evidence_file_is_named_not_followed(tmp_path: Path, name: str):
    """A symlinked evidence file had its target's text copied into report.html."""
    folder = a_run(tmp_path)
    outside = tmp_path / "outside"
    (outside / "zpool").mkdir(parents=True)
    for target in (outside / "secret", outside / "zpool" / "before.txt"):
        target.write_text(f"{SECRET}\n")
    (folder / name).unlink() if (folder / name).is_file() else shutil.rmtree(folder / name, ignore_errors=True)
    (folder / name).symlink_to(outside / "zpool" if name == "zpool" else outside / "secret")
    page = render_report(folder).read_text()
    assert SECRET not in page and f"{name} is a symlink, not a" in page


@pytest.mark.parametrize("name", EVIDENCE)
def test_a_fifo_where_evidence_belongs_is_named_and_never_opened(tmp_path: Path, name: str, no_hang):
    folder = a_run(tmp_path)
    (folder / name).unlink() if (folder / name).is_file() else shutil.rmtree(folder / name, ignore_errors=True)
    os.mkfifo(folder / name)
    page = render_report(folder).read_text()
    assert f"{name} is a FIFO, not a" in page


@pytest.mark.parametrize("name", ["results.json", "probe.log", "zpool/before.txt"])
def test_a_directory_where_a_file_belongs_is_named(tmp_path: Path, name: str):
    folder = a_run(tmp_path)
    (folder / name).unlink(missing_ok=True)
    (folder / name).mkdir()
    assert f"{name} is a directory, not a file" in render_report(folder).read_text()


def test_a_symlink_loop_at_artifacts_latest_is_one_line(tmp_path: Path):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "latest").symlink_to("latest")
    result = subprocess.run([sys.executable, "-m", "lab.cli", "report"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "symlink loop" in result.stderr


DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = "9" * 5000
HOSTILE_JSON = {
    "deep nesting": (DEEP, "nested too deeply"),
    "an integer thousands of digits long": (LONG_INT, "a number this reader refuses"),
    "NaN": ('{"scenario": NaN}', "NaN"),
    "Infinity": ('{"facts": {"fault_at": -Infinity}}', "-Infinity"),
    "not UTF-8": (b'{"scenario": "\xff\xfe"', "damaged"),
    "the wrong shape": ('{"claims": {"held": true}, "steps": "all"}', "'claims' is a dict, not a list"),
}


@pytest.mark.parametrize("content", HOSTILE_JSON.values(), ids=HOSTILE_JSON)
def test_a_hostile_results_json_is_one_line_in_the_report(tmp_path: Path, content):
    text, why = content
    folder = a_run(tmp_path)
    (folder / "results.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    run = load_run(folder)
    assert run.results is None and why in run.results_problem and "\n" not in run.results_problem
    assert len(run.results_problem) < 400
    render_report(folder)
    render_summary(folder, Console(file=io.StringIO(), width=200))
    assert collect([folder]) == {}


@pytest.mark.parametrize("value", ["1e300", "-1e300", "1e400", LONG_INT, "NaN", "Infinity", DEEP, '"soon"'])
def test_hostile_timestamps_in_events_are_not_a_traceback(tmp_path: Path, value: str):
    folder = a_run(tmp_path)
    lines = (folder / "events.jsonl").read_text().splitlines()
    lines.insert(1, f'{{"kind": "fault", "host": "ctrl-a", "ts": {value}, "t": {value}}}')
    lines.append(f'{{"kind": "run-end", "ts": {value}}}')
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    page = render_report(folder).read_text()
    render_summary(folder, Console(file=io.StringIO(), width=200))
    assert 'id="verdict"' in page


def test_huge_and_odd_numbers_in_facts_are_shown_not_a_traceback(tmp_path: Path):
    folder = a_run(tmp_path)
    big = int("9" * 4000)
    edit_results(folder, lambda data: data["facts"].update(
        fault_at=1e300, copy_started=big, failover_stall_s=big, copy_seconds=-1e308,
        takeover_timeline_s={"fenced": 1e300, "imported": big}))
    (folder / "probe.log").unlink()
    render_report(folder)
    render_summary(folder, Console(file=io.StringIO(), width=200))
    assert collect([folder])[("kill-ctrl-a", "paper")].stall_s is None


@pytest.mark.parametrize("line", ["nan nan ok", "inf 1 ok", "1e300 1e300 ok", f"{LONG_INT} 1 ok", "-5 1 ok"])
def test_probe_timestamps_that_are_not_times_are_damaged_lines(tmp_path: Path, line: str):
    folder = a_run(tmp_path)
    with (folder / "probe.log").open("a") as log:
        log.write(line + "\n")
    run = load_run(folder)
    assert run.damaged_probe_lines == 1 and run.stall is not None
    render_report(folder)


def test_a_log_that_is_not_utf8_is_shown_and_the_matrix_still_reads_the_probe(tmp_path: Path):
    """A probe.log with a byte that is not UTF-8 made `bst report --matrix` a UnicodeDecodeError."""
    folder = a_run(tmp_path)
    with (folder / "probe.log").open("ab") as log:
        log.write(b"\xff\xfe garbage\n")
    (folder / "zpool" / "ctrl-a-final.txt").write_bytes(b"\xff\xfe\x00pool: \x80\n")
    render_report(folder)
    assert collect([folder])[("kill-ctrl-a", "paper")].stall_s is not None


def test_a_file_longer_than_the_limit_is_read_in_part_and_said(tmp_path: Path):
    folder = a_run(tmp_path)
    sample = (folder / "probe.log").read_text().splitlines()[0] + "\n"
    (folder / "probe.log").write_text(sample * (MAX_READ_BYTES // len(sample) + 10))
    run = load_run(folder)
    assert run.probe and any("probe.log is longer than 4 MiB: only its start was read" in s for s in run.skipped)
    assert "probe.log is longer than 4 MiB" in render_report(folder).read_text()
