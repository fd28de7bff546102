"""The faults × modes matrix reads each run's results.json and shows what differs between designs."""

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

from lab.report.matrix import collect, load_cell, matrix_table, render_matrix
from lab.runfolder import read_results

RUNS = Path(__file__).parent / "fixtures" / "runs"
COMPLETE = RUNS / "20240424T230640Z-failover"


def _run(root: Path, name: str, **changes) -> Path:
    results = json.loads((COMPLETE / "results.json").read_text())
    facts = {**results["facts"], **changes.pop("facts", {})}
    results.update(changes, facts=facts)
    folder = root / name
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results))
    return folder


class Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self.fault = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-fault" in attrs:
            self.fault = attrs["data-fault"]
        if tag == "td" and "data-mode" in attrs:
            self.cells[(self.fault, attrs["data-mode"])] = attrs


def test_the_stored_run_is_the_paper_mode_kill_of_ctrl_a():
    cell = load_cell(COMPLETE)
    assert (cell.fault, cell.arbitrator) == ("kill-ctrl-a", "paper")
    results = json.loads((COMPLETE / "results.json").read_text())
    assert cell.stall_s == results["facts"]["failover_stall_s"]


def test_a_row_per_fault_and_a_column_per_mode(tmp_path):
    source = json.loads((COMPLETE / "results.json").read_text())["facts"]["source_md5"]
    runs = [
        _run(tmp_path, "20260101T000000Z-failover", arbitrator="paper", facts={"md5_final": "0" * 32}),
        _run(tmp_path, "20260101T010000Z-failover", arbitrator="takeover", facts={"md5_final": source}),
        _run(tmp_path, "20260101T020000Z-split-brain", fault="split-brain", arbitrator="takeover",
             unexpected=["no_double_import"]),
    ]
    path, cells = render_matrix(runs, tmp_path)
    assert cells[("kill-ctrl-a", "paper")].data == "differs"
    assert cells[("kill-ctrl-a", "takeover")].data == "intact"
    assert not cells[("split-brain", "takeover")].as_expected
    page = Cells()
    page.feed(path.read_text())
    assert set(page.cells) == {("kill-ctrl-a", "paper"), ("kill-ctrl-a", "takeover"), ("split-brain", "paper"),
                               ("split-brain", "takeover")}
    assert page.cells[("kill-ctrl-a", "takeover")]["data-data"] == "intact"
    assert page.cells[("split-brain", "paper")].get("class") == "missing"
    table = matrix_table(cells)
    assert [c.header for c in table.columns] == ["fault", "paper", "takeover"]


def test_the_latest_run_of_a_cell_wins_and_broken_folders_are_left_out(tmp_path):
    old = _run(tmp_path, "20260101T000000Z-failover", facts={"failover_stall_s": 30.0})
    new = _run(tmp_path, "20260102T000000Z-failover", facts={"failover_stall_s": 9.5})
    broken = tmp_path / "20260103T000000Z-failover"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    cells = collect([new, broken, old])
    assert list(cells) == [("kill-ctrl-a", "paper")]
    assert cells[("kill-ctrl-a", "paper")].stall_s == 9.5


def test_an_unreadable_copy_says_why(tmp_path):
    run = _run(tmp_path, "20260101T000000Z-failover", facts={"md5_final": None})
    cell = load_cell(run)
    assert cell.data.startswith("unreadable")


def test_a_run_stopped_before_reading_back_says_not_checked(tmp_path):
    results = json.loads((COMPLETE / "results.json").read_text())
    facts = {k: v for k, v in results["facts"].items() if k not in ("md5_final", "md5_from_disk")}
    folder = tmp_path / "20260101T000000Z-freeze"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({**results, "facts": facts, "claims": []}))
    cell = load_cell(folder)
    assert cell.data == "not checked" and cell.pools == "not checked"


def test_a_stalled_copy_and_io_that_never_came_back_are_said_in_the_cell(tmp_path):
    folder = _run(tmp_path, "20260101T000000Z-freeze", fault="freeze-ctrl-a", arbitrator="takeover",
                  facts={"copy_stalled_at_bytes": 98304000, "failover_stall_s": 372.4,
                         "failover_stall_ongoing": True})
    lines = load_cell(folder).lines()
    assert lines[0].startswith("data from disk: copy stalled at 98304000 bytes; ")
    assert lines[2] == "client stall: ≥ 372.4 s, I/O never came back"
    assert load_cell(COMPLETE).lines()[2].endswith(" s") and "never" not in load_cell(COMPLETE).lines()[2]


def test_the_stall_is_measured_from_the_probe_log_when_the_run_has_one(tmp_path):
    folder = _run(tmp_path, "20260101T000000Z-freeze", facts={"failover_stall_s": 1.9})
    (folder / "probe.log").write_text("1 1.5 ok\n2 2.5 ok\n3 3.5 fail\n300 300.5 fail\n")
    cell = load_cell(folder)
    assert (cell.stall_s, cell.stall_ongoing) == (298.0, True)
    (folder / "probe.log").write_text("garbage\n")
    assert (load_cell(folder).stall_s, load_cell(folder).stall_ongoing) == (1.9, False)


def test_a_failed_matrix_writes_nothing(tmp_path):
    """Harm 2: matrix.html was written even when no run could be read."""
    import pytest

    from lab.errors import LabError

    broken = tmp_path / "20260103T000000Z-failover"
    broken.mkdir()
    (broken / "results.json").write_text(json.dumps({"facts": [1, 2], "unexpected": 3}))
    with pytest.raises(LabError, match="no run with a usable results.json under"):
        render_matrix([broken], tmp_path)
    assert not (tmp_path / "matrix.html").exists()


def test_a_matrix_html_that_is_a_symlink_is_refused(tmp_path):
    import pytest

    from lab.errors import LabError

    run = _run(tmp_path, "20260101T000000Z-failover")
    victim = tmp_path.parent / f"{tmp_path.name}-victim.html"
    victim.write_text("keep\n")
    (tmp_path / "matrix.html").symlink_to(victim)
    with pytest.raises(LabError, match="matrix.html is a symlink"):
        render_matrix([run], tmp_path)
    assert victim.read_text() == "keep\n"


def test_hand_edited_results_are_left_out_and_brackets_stay_text(tmp_path):
    from rich.console import Console

    good = _run(tmp_path, "20260101T000000Z-failover", fault="kill[/x]", arbitrator="[bold]paper")
    lists = _run(tmp_path, "20260102T000000Z-failover", facts={})
    (lists / "results.json").write_text(json.dumps({**json.loads((lists / "results.json").read_text()),
                                                     "failed_steps": 7}))
    cells = collect([good, lists])
    assert list(cells) == [("kill[/x]", "[bold]paper")]
    console = Console(record=True, width=200)
    console.print(matrix_table(cells))
    text = console.export_text()
    assert "kill[/x]" in text and "[bold]paper" in text


BEFORE_SCHEMA = RUNS / "20261130T191158Z-failover-paper-before-schema"


def _claims_with(results: dict, name: str, **changes) -> list[dict]:
    return [{**c, **changes} if c["claim"] == name else c for c in results["claims"]]


def test_why_the_data_was_unreadable_comes_from_the_claims_reason_not_its_prose(tmp_path):
    results = json.loads((COMPLETE / "results.json").read_text())
    claims = _claims_with(results, "final_md5", held=False, reason="data-unreadable", detail="wrong fs type",
                          evidence="source 5f3c, final None (mount exited 32: bad superblock)")
    run = _run(tmp_path, "20260101T000000Z-failover", claims=claims, facts={"md5_final": None})
    assert load_cell(run).data == "unreadable: wrong fs type"
    plain = _run(tmp_path, "20260102T000000Z-failover", facts={"md5_final": None},
                 claims=_claims_with(results, "final_md5", held=False, reason="not-held"))
    assert load_cell(plain).data == "unreadable"


def test_a_results_json_from_before_the_schema_still_makes_a_cell():
    """A real run written before reason/detail/steps: what it can show, the md5 without a why."""
    cell = load_cell(BEFORE_SCHEMA)
    assert (cell.fault, cell.arbitrator) == ("kill-ctrl-a", "paper")
    assert cell.data == "unreadable" and cell.pools == "clean"
    assert cell.stall_s == 12.105 and not cell.stall_ongoing
    assert cell.as_expected and cell.verdict == "as expected"


def test_a_claim_with_an_unknown_reason_leaves_the_run_out(tmp_path):
    results = json.loads((COMPLETE / "results.json").read_text())
    run = _run(tmp_path, "20260101T000000Z-failover",
               claims=_claims_with(results, "md5_from_disk", reason="cosmic rays"))
    assert load_cell(run) is None


def test_runs_of_two_stacks_sit_side_by_side_per_mode(tmp_path):
    source = _run(tmp_path, "x", facts={})
    md5 = json.loads((source / "results.json").read_text())["facts"]["source_md5"]
    runs = [
        _run(tmp_path, "20260101T000000Z-failover", stack="linux", facts={"md5_final": md5}),
        _run(tmp_path, "20260101T010000Z-failover", stack="freebsd", facts={"md5_final": "0" * 32}),
    ]
    path, cells = render_matrix(runs, tmp_path)
    assert cells[("kill-ctrl-a", "paper (linux)")].data == "intact"
    assert cells[("kill-ctrl-a", "paper (freebsd)")].data == "differs"
    page = Cells()
    page.feed(path.read_text())
    assert set(page.cells) == {("kill-ctrl-a", "paper (linux)"), ("kill-ctrl-a", "paper (freebsd)")}


def test_runs_of_one_stack_keep_plain_mode_columns(tmp_path):
    runs = [_run(tmp_path, "20260101T000000Z-failover", stack="freebsd")]
    assert list(collect(runs)) == [("kill-ctrl-a", "paper")]


def test_run_folders_given_relative_to_the_working_directory_are_read(tmp_path, monkeypatch):
    """The drill passes ``artifacts/<run>``: a relative folder and its files are one place, not joined twice
    (found by a drill: every results.json read as missing, and the matrix said there was no run)."""
    shutil.copytree(COMPLETE, tmp_path / "artifacts" / COMPLETE.name)
    monkeypatch.chdir(tmp_path)
    folder = Path("artifacts") / COMPLETE.name
    assert read_results(folder) is not None
    path, cells = render_matrix([folder], Path("artifacts"))
    assert cells and (tmp_path / path).is_file()
