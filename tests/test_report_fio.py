"""A fio run's report: the latency log placed on the host's clock, the time base's bound said, the verify
passes and lost writes in words, in report.html, matrix.html and the terminal summary."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from test_report import PNG_SIGNATURE, RUNS, ReportPage
from test_report_matrix import Cells

from lab.parsers.fio import parse_latency_log
from lab.report import load_run, render_report, render_summary
from lab.report.matrix import load_cell, render_matrix

FIO = Path(__file__).parent / "fixtures" / "parsers" / "fio"
LOG = FIO / "write_pass_sigstop_lat.1.log"
"""A real write pass whose fio was stopped 1.5 s: 996 I/Os, reads and writes, one gap."""
OFFSET = -82_680_000.0
"""Host minus client: the fixture's client clock ran ~957 days ahead of this run's host."""
GUEST_FAULT = 1796680094.5
FAULT = GUEST_FAULT + OFFSET
FIRST_AFTER = 1796680095.708
"""The first completion after GUEST_FAULT in the log, client clock."""


def _clock(label: str, offset: float, error: float, at: float) -> dict:
    return {"host": "clnt-1", "label": label, "host_before": at - error, "host_after": at + error,
            "guest": at - offset, "offset_s": offset, "error_s": error}


def fio_run(root: Path, clocks: list[dict] | None = None, log: Path | None = LOG, name: str = "run",
            fault: str = "kill-ctrl-a", **facts) -> Path:
    folder = root / name
    (folder / "fio").mkdir(parents=True)
    if log is not None:
        shutil.copy(log, folder / "fio" / "beast_lat.1.log")
    if clocks is None:
        clocks = [_clock("before-write", OFFSET, 0.012, FAULT - 60)]
    (folder / "clocks.jsonl").write_text("".join(json.dumps(c) + "\n" for c in clocks))
    events = [{"ts": FAULT - 100, "t": 0.0, "kind": "run-start", "scenario": "failover"},
              {"ts": FAULT, "t": 100.0, "kind": "fault", "host": "ctrl-a"},
              {"ts": FAULT + 400, "t": 500.0, "kind": "run-end"}]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    recorded = {"workload": "fio", "failover_stall_s": 1.208, "failover_stall_ongoing": False,
                "failover_stall_source": "fio", "time_base_error_s": 0.012, "client_clock_offset_s": OFFSET,
                "takeover_timeline_s": {"membership without the victim": 0.3, "fenced": 0.6, "imported": 1.0}}
    (folder / "results.json").write_text(json.dumps({
        "scenario": "failover", "stack": "linux", "fault": fault, "arbitrator": "cluster",
        "victim": "ctrl-a", "claims": [], "facts": {**recorded, **facts}}))
    return folder


def page_of(folder: Path) -> ReportPage:
    page = ReportPage()
    page.feed(render_report(folder).read_text())
    return page


def test_the_plot_is_fios_log_shifted_onto_the_hosts_clock(tmp_path):
    from lab.report.fio_plot import fio_figure

    folder = fio_run(tmp_path)
    page = page_of(folder)
    assert page.by_id["throughput"]["data-source"] == "fio"
    assert (folder / "throughput.png").read_bytes().startswith(PNG_SIGNATURE)
    figure = fio_figure(load_run(folder))
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    points = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label().startswith(("write", "read"))}
    assert set(points) == {"write (500)", "read (verify backlog) (496)"}
    log = parse_latency_log(LOG.read_text())
    xs = sorted(x for offsets in points.values() for x, _ in offsets)
    assert xs[0] == pytest.approx(log[0].completed + OFFSET - FAULT, abs=1e-3)
    labels = [t.get_text().strip() for t in ax.texts]
    assert {"detected +0.3 s", "fenced +0.6 s", "imported +1 s"} <= set(labels)


def test_the_stall_runs_from_the_fault_to_the_first_completion_on_host_time(tmp_path):
    page = page_of(fio_run(tmp_path))
    stall = page.by_id["fio-stall"]
    assert float(stall["data-seconds"]) == pytest.approx(FIRST_AFTER - GUEST_FAULT, abs=1e-3)
    assert stall["data-ongoing"] == "false"
    assert "1.208 s ± 0.012 s" in page.all_text


def test_the_time_base_bound_is_stated_beside_the_plot(tmp_path):
    page = page_of(fio_run(tmp_path))
    base = page.by_id["time-base"]
    assert float(base["data-error-s"]) == 0.012 and float(base["data-offset-s"]) == OFFSET
    assert base["data-too-loose"] == "false" and base["class"] == "note"
    assert "within ±0.012 s" in page.all_text and "'before-write'" in page.all_text


def test_a_bound_above_a_quarter_second_is_said(tmp_path):
    page = page_of(fio_run(tmp_path, clocks=[_clock("slow ssh", OFFSET, 0.4, FAULT)], time_base_error_s=0.4))
    base = page.by_id["time-base"]
    assert base["data-too-loose"] == "true" and base["class"] == "warn"
    assert "exceeds 0.25 s" in page.all_text
    console = Console(record=True, width=250)
    render_summary(tmp_path / "run", console)
    assert "time base bound above 0.25 s" in console.export_text()


def test_the_reading_with_the_smallest_error_places_the_log(tmp_path):
    """Two readings that agree within their bounds: the tighter one's offset is used."""
    clocks = [_clock("loose", OFFSET + 0.05, 0.2, FAULT - 60), _clock("tight", OFFSET, 0.01, FAULT + 200),
              {"host": "ctrl-b", "label": "controller", "offset_s": 5.0, "error_s": 0.001}]
    base = load_run(fio_run(tmp_path, clocks=clocks)).time_base()
    assert (base.offset_s, base.error_s) == (OFFSET, 0.01) and "'tight'" in base.source


def test_readings_that_disagree_use_the_one_nearest_the_fault_and_widen_the_bound(tmp_path):
    """The client's clock was stepped during the run (e.g. set after a snapshot's restore)."""
    clocks = [_clock("stepped-later", OFFSET - 3.0, 0.005, FAULT + 300), _clock("near", OFFSET, 0.02, FAULT - 5)]
    folder = fio_run(tmp_path, clocks=clocks)
    base = load_run(folder).time_base()
    assert base.offset_s == OFFSET and base.error_s == pytest.approx(2.975)
    assert "nearest the fault" in base.source and base.too_loose
    assert "exceeds 0.25 s" in page_of(folder).all_text


def test_without_clocks_the_drills_facts_place_the_log(tmp_path):
    folder = fio_run(tmp_path, clocks=[])
    (folder / "clocks.jsonl").unlink()
    page = page_of(folder)
    assert float(page.by_id["time-base"]["data-offset-s"]) == OFFSET
    assert "results.json's client_clock_offset_s" in page.all_text
    assert float(page.by_id["fio-stall"]["data-seconds"]) == pytest.approx(1.208, abs=1e-3)


def test_without_any_time_base_the_log_is_drawn_on_the_clients_clock_and_said_so(tmp_path):
    folder = fio_run(tmp_path, clocks=[{"host": "clnt-1", "offset_s": "soon"}], time_base_error_s=None,
                     client_clock_offset_s=None)
    page = page_of(folder)
    assert page.by_id["time-base"]["data-error-s"] == "" and page.by_id["fio-stall"]["data-seconds"] == ""
    assert "not aligned with the fault" in page.all_text and "1 line(s) of clocks.jsonl" in page.all_text
    assert page.by_id["throughput"]["data-source"] == "fio"


def test_fios_facts_read_as_words(tmp_path):
    folder = fio_run(tmp_path, acknowledged_writes_lost=3, fault_window={
        "start": FAULT, "end": FAULT + 30, "samples": 412, "p99_s": 0.0042, "max_s": 1.208},
        fio_verify={"after-fault": {"verified": 16381, "failed": 3, "error": 84},
                    "final": {"verified": 16384, "failed": 0, "error": 0}})
    page = page_of(folder)
    fact = {key: page.cells[("data-fact", key)][1] for key in
            ("acknowledged_writes_lost", "fault_window", "fio_verify", "failover_stall_s")}
    assert fact["acknowledged_writes_lost"] == "3"
    assert fact["fault_window"] == "412 I/O(s) completed in the 30.0 s from the fault: p99 latency 4.2 ms, max 1.21 s"
    assert fact["fio_verify"].startswith("after the fault: 16381 block(s) verified, 3 failed, fio error 84")
    assert fact["fio_verify"].endswith("after recovery: 16384 block(s) verified, 0 failed")
    assert page.cells[("data-fact", "failover_stall_s")][0].startswith("failover stall: from the fault to the first")


def test_lost_writes_not_judged_say_so(tmp_path):
    page = page_of(fio_run(tmp_path, acknowledged_writes_lost=None))
    assert page.cells[("data-fact", "acknowledged_writes_lost")][1] == "not judged"


def test_a_probe_run_lists_no_fio_facts(tmp_path):
    folder = tmp_path / "probe-run"
    shutil.copytree(RUNS / "20240424T230640Z-failover", folder)
    page = page_of(folder)
    assert "data-source" not in page.by_id["throughput"] and "time-base" not in page.by_id
    assert not {"fio_verify", "acknowledged_writes_lost"} & {r["data-fact"] for r in page.rows["data-fact"]}


def test_the_matrix_shows_the_fio_stall_and_lost_writes(tmp_path):
    lost = fio_run(tmp_path, name="20260101T000000Z-failover", acknowledged_writes_lost=2, failover_stall_s=27.6)
    (lost / "probe.log").write_text("1 1.5 ok\n2 2.5 ok\n300 300.5 ok\n")
    unjudged = fio_run(tmp_path, name="20260101T010000Z-freeze", fault="freeze", acknowledged_writes_lost=None)
    probe_run = tmp_path / "20260101T020000Z-probe"
    shutil.copytree(RUNS / "20240424T230640Z-failover", probe_run)
    path, cells = render_matrix([lost, unjudged, probe_run], tmp_path)
    cell = load_cell(lost)
    assert (cell.stall_s, cell.stall_source, cell.lost_writes) == (27.6, "fio", 2)
    assert cell.lines()[2:4] == ["client stall (fio): 27.6 s", "acknowledged writes lost: 2"]
    assert load_cell(unjudged).lines()[3] == "acknowledged writes lost: not measured"
    assert load_cell(probe_run).lines()[2:4] == ["client stall: 21.6 s", "acknowledged writes lost: not measured"]
    page = Cells()
    page.feed(path.read_text())
    shown = {key: (attrs["data-stall"], attrs["data-stall-source"], attrs["data-lost-writes"])
             for key, attrs in page.cells.items() if "data-stall" in attrs}
    assert shown[("kill-ctrl-a", "cluster")] == ("27.6", "fio", "2")
    assert shown[("freeze", "cluster")] == ("1.208", "fio", "")
    assert shown[("kill-ctrl-a", "paper")] == ("21.62", "probe", "")


def test_the_summary_mentions_the_fio_stall_and_lost_writes(tmp_path):
    folder = fio_run(tmp_path, acknowledged_writes_lost=0,
                     fio_verify={"final": {"verified": 16384, "failed": 0, "error": 0}})
    console = Console(record=True, width=250)
    render_summary(folder, console)
    text = console.export_text()
    assert "failover stall (fio log, host clock): 1.208 s ± 0.012 s" in text
    assert "failover stall (results.json): 1.208 s from the fault to fio's first completed I/O" in text
    assert "acknowledged writes lost: none" in text
    assert "fio verify after recovery: 16384 block(s) verified, 0 failed" in text
    assert "probe.log" not in text


@pytest.mark.parametrize("kind", ["symlink", "fifo", "linked-folder"])
def test_a_fio_log_that_is_not_a_file_is_not_read(tmp_path, kind):
    folder = fio_run(tmp_path, log=None)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(LOG, outside / "beast_lat.1.log")
    if kind == "symlink":
        (folder / "fio" / "beast_lat.1.log").symlink_to(outside / "beast_lat.1.log")
    elif kind == "fifo":
        os.mkfifo(folder / "fio" / "beast_lat.1.log")
    else:
        (folder / "fio").rmdir()
        (folder / "fio").symlink_to(outside)
    run = load_run(folder)
    assert run.fio is None
    expected = "a FIFO" if kind == "fifo" else "a symlink"
    assert expected in run.fio_problem and "it is not read" in run.fio_problem
    page = page_of(folder)
    assert page.by_id["fio-problem"] and expected in page.all_text
    assert "throughput" not in page.by_id and not (folder / "throughput.png").exists()


def test_a_malformed_log_is_one_clear_note_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.log"
    bad.write_text("105, 229951, 1, 4096, 4046848, 0\n110, 316211, 1, 4096, 49676288, 0\n")
    folder = fio_run(tmp_path, log=bad)
    page = page_of(folder)
    notes = [n for n in page.text if "has no I/O that parses" in n]
    assert len(notes) == 1 and "log_unix_epoch=1" in notes[0]
    assert "throughput" not in page.by_id


def test_a_torn_last_line_is_skipped_and_the_rest_plotted(tmp_path):
    torn = tmp_path / "torn.log"
    torn.write_text(LOG.read_text() + "1796680097500, 2299")
    page = page_of(fio_run(tmp_path, log=torn))
    assert page.by_id["throughput"]["data-source"] == "fio"
    assert "996 I/Os logged. 1 damaged line(s) of fio/beast_lat.1.log were skipped." in page.all_text


@pytest.mark.parametrize("fault_ts, offset, error", [(1e300, OFFSET, 0.01), (-1e300, OFFSET, 0.01), (FAULT, 1e308, 0.0),
                                                    (FAULT, -1e308, 1e308), (FAULT, OFFSET, 1e300)])
def test_hostile_times_and_offsets_are_not_a_traceback(tmp_path, fault_ts, offset, error):
    folder = fio_run(tmp_path, clocks=[_clock("odd", offset, error, FAULT)], takeover_timeline_s={"fenced": 1e300},
                     fault_window={"start": -1e308, "end": 1e308, "samples": 10**400, "p99_s": 1e300, "max_s": True},
                     fio_verify={"final": {"verified": 10**400, "failed": -1, "error": "x"}, "after-fault": [1]},
                     acknowledged_writes_lost=-2)
    events = (folder / "events.jsonl").read_text().replace(f'"ts": {json.dumps(FAULT)}, "t": 100.0',
                                                          f'"ts": {fault_ts!r}, "t": 100.0')
    (folder / "events.jsonl").write_text(events)
    page = page_of(folder)
    render_summary(folder, Console(file=io.StringIO(), width=200))
    render_matrix([folder], tmp_path)
    assert page.by_id["verdict"] and page.cells[("data-fact", "acknowledged_writes_lost")][1] == "-2"


def test_an_offset_that_puts_the_log_outside_the_run_is_doubted_not_used(tmp_path):
    """An offset of the wrong sign (client minus host) lands fio's I/Os ~5 years away from the fault."""
    folder = fio_run(tmp_path, clocks=[_clock("wrong sign", -OFFSET, 0.01, FAULT)])
    run = load_run(folder)
    assert "outside the run" in run.time_base_doubt() and run.fio_stall() is None
    page = page_of(folder)
    assert page.by_id["time-base"]["data-doubt"] == "true" and page.by_id["fio-stall"]["data-seconds"] == ""
    assert "they are left on the client's clock" in page.all_text
    console = Console(record=True, width=400)
    render_summary(folder, console)
    assert "time base doubted: the offset" in console.export_text()
