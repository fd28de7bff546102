"""Any run folder, however shaped: `bst report` gives a report or one clear line, never another exception,
never a hang, and never reads or writes a file outside the folder.

Hypothesis builds the folders: random JSON in results.json and events.jsonl (huge integers, NaN, deep
nesting, the wrong shapes), and each evidence file as a regular file, a symlink inside or out, a FIFO, a
directory where a file belongs, or nothing.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from hostile_support import one_line_or_value, snapshot
from hostile_support import write_entry as place
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rich.console import Console

from lab.errors import LabError
from lab.report import render_report, render_summary
from lab.report.matrix import render_matrix
from lab.runfolder import EventKind

SECRET = "text of a file beside the run folder"
EVIDENCE = ("results.json", "events.jsonl", "probe.log", "zpool/ctrl-a-final.txt", "hosts/ctrl-a.log",
            "report.html", "throughput.png")

NUMBERS = (st.integers() | st.integers(min_value=10**300, max_value=10**3000) | st.floats()
           | st.sampled_from([1e300, -1e300, 0.0, 1714000000.0]))
JSON_VALUES = st.recursive(st.none() | st.booleans() | NUMBERS | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=8)
RESULT_FIELDS = ("scenario", "stack", "fault", "arbitrator", "victim", "claims", "facts", "steps", "failed_steps",
                 "interrupted", "unexpected")
CLAIMS = st.lists(st.fixed_dictionaries({"claim": st.text(max_size=6)}, optional={
    "held": JSON_VALUES, "evidence": JSON_VALUES, "expectation": st.sampled_from(["hold", "fail", "maybe", "x"]),
    "reason": JSON_VALUES, "detail": JSON_VALUES}), max_size=3)
RESULTS = st.one_of(JSON_VALUES, st.fixed_dictionaries(
    {}, optional={name: CLAIMS if name == "claims" else JSON_VALUES for name in RESULT_FIELDS}))
EVENTS = st.lists(st.fixed_dictionaries(
    {"kind": st.sampled_from([k.value for k in EventKind]) | st.text(max_size=4)},
    optional={"ts": NUMBERS | JSON_VALUES, "t": NUMBERS, "step": st.text(max_size=4), "claim": st.text(max_size=4),
              "held": JSON_VALUES, "expectation": JSON_VALUES, "duration": NUMBERS}), max_size=6)
TEXTS = st.sampled_from([
    "[" * 50_000, "9" * 5000, "NaN", "\xff\xfe not utf-8", "1 2 ok\nnan nan ok\n1e300 1e301 fail\n",
    "1714000000 1714000001 ok\n1714000005 1714000006 ok\n", "  pool: tank\n state: ONLINE\n",
]) | st.text(max_size=40)


def entry_kinds(name: str) -> st.SearchStrategy[str]:
    """Mostly files, so most folders are runs and get as far as a report; report.html is never bst's own."""
    odd = ["symlink-in", "symlink-out", "fifo", "directory", "missing"]
    return st.sampled_from(["missing" if name in ("report.html", "throughput.png") else "regular"] * 5 + odd)


FOLDERS = st.fixed_dictionaries({
    "results": RESULTS, "events": EVENTS, "start": st.booleans(), "texts": st.tuples(*(TEXTS,) * len(EVIDENCE)),
    "kinds": st.tuples(*(entry_kinds(name) for name in EVIDENCE)), "zpool_linked": st.booleans(),
})


def write_entry(folder: Path, name: str, kind: str, content: bytes, outside: Path) -> None:
    place(folder / name, kind, content, folder / "elsewhere.txt", outside / "secret.txt")


def build(root: Path, shape: dict) -> tuple[Path, Path]:
    """The run folder ``root/run`` the shape describes, and a sibling folder no report may touch."""
    folder, outside = root / "run", root / "sibling"
    (outside / "zpool").mkdir(parents=True)
    for secret in (outside / "secret.txt", outside / "zpool" / "ctrl-a-final.txt"):
        secret.write_text(f"{SECRET}\n")
    folder.mkdir()
    start = [{"kind": "run-start", "ts": 1714000000.0}] if shape["start"] else []
    contents = {"results.json": json.dumps(shape["results"]).encode(),
                "events.jsonl": "".join(json.dumps(e) + "\n" for e in start + shape["events"]).encode()}
    for name, kind, text in zip(EVIDENCE, shape["kinds"], shape["texts"], strict=True):
        if name == "zpool/ctrl-a-final.txt" and shape["zpool_linked"]:
            (folder / "zpool").symlink_to(outside / "zpool")
            continue
        write_entry(folder, name, kind, contents.get(name, text.encode("utf-8", "surrogateescape")), outside)
    return folder, outside


def report_as_bst_does(folder: Path) -> str:
    """`bst report RUN`: report.html, then the summary; LabError is the one line the CLI prints."""
    def report() -> str:
        render_report(folder)
        event("a report")
        summary = Console(file=io.StringIO(), width=200)
        render_summary(folder, summary)
        return summary.file.getvalue()

    return one_line_or_value(report, "bst report") or ""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(shape=FOLDERS)
def test_any_run_folder_gives_a_report_or_one_line(tmp_path_factory, shape):
    folder, outside = build(tmp_path_factory.mktemp("hostile"), shape)
    before = snapshot(outside)
    summary = report_as_bst_does(folder)
    assert snapshot(outside) == before, "bst report touched a file outside the run folder"
    assert SECRET not in summary
    report = folder / "report.html"
    if report.is_file() and not report.is_symlink():
        assert SECRET not in report.read_text()
    try:
        render_matrix([folder], folder)
    except LabError as error:
        assert "\n" not in str(error)
    assert snapshot(outside) == before, "bst report --matrix touched a file outside the run folder"
