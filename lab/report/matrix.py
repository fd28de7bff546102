"""The side-by-side view of many drills: a row per fault, a column per arbitrator mode (per stack and mode
when the runs come from more than one stack, e.g. the nightly's FreeBSD job beside its Debian ones).

Each cell answers what a storage engineer compares between designs: did the data survive when read back
from disk, are the pools clean after recovery, how long the client stalled, and whether every verdict
came out as the expectations file says. Built from the runs' results.json alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.markup import escape as markup_escape
from rich.table import Table

from lab.errors import LabError, ParseError
from lab.labdir import inside
from lab.parsers.probe import longest_stall, parse_probe_log
from lab.report.fio_words import NOT_MEASURED, lost_writes
from lab.report.html import STYLE
from lab.runfolder import Reason, Results, SchemaError, as_number, read_results
from lab.runfolder_io import NotARegularFile, read_text, replace_file
from lab.terminal import printable

MATRIX_NAME = "matrix.html"
GENERATOR = '<meta name="generator" content="bst report --matrix">'
"""What proves bst wrote a matrix.html: one without it is someone else's file and is never overwritten."""
DEFAULT_FAULT = "kill-ctrl-a"
DEFAULT_ARBITRATOR = "paper"
WHY_CHARS = 60
POOLS_CHARS = 90


@dataclass(frozen=True)
class Cell:
    """One drill, reduced to the figures the matrix compares."""

    folder: Path
    fault: str
    arbitrator: str
    stack: str
    data: str
    """"intact", "differs", "unreadable: <why>" or "not checked"."""
    pools: str
    stall_s: float | None
    stall_ongoing: bool
    """No probe succeeded (no I/O completed) after the stall: the client's I/O never came back."""
    stall_source: str
    """"fio" (fault to first completion) or "probe" (longest gap between successful probes)."""
    lost_writes: int | None
    """Acknowledged writes fio's verify found lost; None when not judged."""
    unexpected: tuple[str, ...]
    failed_steps: tuple[str, ...]
    interrupted: bool

    @property
    def as_expected(self) -> bool:
        return not (self.unexpected or self.failed_steps or self.interrupted)

    @property
    def verdict(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.as_expected:
            return "as expected"
        parts = [f"unexpected: {', '.join(self.unexpected)}"] if self.unexpected else []
        parts += [f"failed steps: {len(self.failed_steps)}"] if self.failed_steps else []
        return "; ".join(parts)

    def lines(self) -> list[str]:
        stall = NOT_MEASURED if self.stall_s is None else f"{self.stall_s:.1f} s"
        if self.stall_ongoing and self.stall_s is not None:
            stall = f"≥ {self.stall_s:.1f} s, I/O never came back"
        lost = NOT_MEASURED if self.lost_writes is None else str(self.lost_writes)
        return [f"data from disk: {self.data}", f"pools after recovery: {self.pools}",
                f"client stall{' (fio)' if self.stall_source == 'fio' else ''}: {stall}",
                f"acknowledged writes lost: {lost}", self.verdict]


MD5_CLAIMS = {"md5_final": "final_md5", "md5_from_disk": "md5_from_disk"}
"""The fact holding the copy's md5 read back, and the claim that judged it."""


def _data(results: Results) -> str:
    stalled = results.facts.get("copy_stalled_at_bytes")
    seen = _data_read_back(results)
    return seen if stalled is None else f"copy stalled at {stalled} bytes; {seen}"


def _data_read_back(results: Results) -> str:
    facts = results.facts
    key = next((k for k in MD5_CLAIMS if k in facts), None)
    if facts.get("source_md5") is None or key is None:
        return "not checked"
    claim = results.claim(MD5_CLAIMS[key])
    if claim is not None and claim.reason is Reason.DATA_UNREADABLE:
        return f"unreadable{': ' + _shortened(claim.detail, WHY_CHARS) if claim.detail else ''}"
    if facts[key] is None:
        return "unreadable"
    return "intact" if facts[key] == facts["source_md5"] else "differs"


def _pools(results: Results) -> str:
    claim = results.claim("final_pools_clean")
    if claim is None:
        return "not checked"
    return "clean" if claim.held else _shortened(claim.evidence or "not clean", POOLS_CHARS)


def _shortened(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _is_fio(facts: dict[str, Any]) -> bool:
    return facts.get("failover_stall_source") == "fio" or (
        facts.get("workload") == "fio" and facts.get("failover_stall_source") in (None, "fio"))


def _stall(folder: Path, facts: dict[str, Any]) -> tuple[float | None, bool]:
    """The client's stall: a fio run's fact (fault to first completion, on the host's clock: not re-derived
    here, as that needs the clock readings); otherwise the longest gap in the run's probe.log (what the drill
    measured it from), or its facts when the log is missing or damaged."""
    if _is_fio(facts):
        return as_number(facts.get("failover_stall_s")), facts.get("failover_stall_ongoing") is True
    try:
        stall = longest_stall(parse_probe_log(read_text(folder, folder / "probe.log").text))
    except (OSError, ParseError, NotARegularFile):
        seconds = as_number(facts.get("failover_stall_s"))
        return seconds, bool(facts.get("failover_stall_ongoing", False))
    return (stall.seconds, stall.ongoing) if stall else (None, False)


def load_cell(folder: Path) -> Cell | None:
    """A run folder's cell; None when it has no results.json matching the schema (damaged or hand-edited)."""
    try:
        results = read_results(Path(folder))
    except SchemaError:
        return None
    if results is None:
        return None
    stall, ongoing = _stall(Path(folder), results.facts)
    return Cell(
        folder=Path(folder), fault=results.fault or DEFAULT_FAULT, arbitrator=results.arbitrator or DEFAULT_ARBITRATOR,
        stack=results.stack,
        data=_data(results), pools=_pools(results), stall_s=stall, stall_ongoing=ongoing,
        stall_source="fio" if _is_fio(results.facts) else "probe", lost_writes=lost_writes(results.facts),
        unexpected=tuple(results.unexpected), failed_steps=tuple(results.failed_steps),
        interrupted=results.interrupted,
    )


def collect(folders: list[Path]) -> dict[tuple[str, str], Cell]:
    """(fault, column) -> the latest run of it among ``folders`` (run folders sort by their UTC stamp). The
    column is the arbitrator mode, or "mode (stack)" when the runs come from more than one stack."""
    loaded = [cell for folder in sorted(folders, key=lambda f: Path(f).name) if (cell := load_cell(folder))]
    several_stacks = len({cell.stack for cell in loaded}) > 1
    cells: dict[tuple[str, str], Cell] = {}
    for cell in loaded:
        column = f"{cell.arbitrator} ({cell.stack or 'stack not recorded'})" if several_stacks else cell.arbitrator
        cells[(cell.fault, column)] = cell
    return cells


def _axes(cells: dict[tuple[str, str], Cell]) -> tuple[list[str], list[str]]:
    faults = list(dict.fromkeys(fault for fault, _ in cells))
    modes = sorted({mode for _, mode in cells}, key=lambda m: (m.split(" ")[0] != DEFAULT_ARBITRATOR, m))
    return faults, modes


def _terminal(text: str) -> str:
    return markup_escape(printable(text))


def matrix_table(cells: dict[tuple[str, str], Cell]) -> Table:
    faults, modes = _axes(cells)
    table = Table("fault", *map(_terminal, modes), title="Faults × arbitrator modes", show_lines=True)
    for fault in faults:
        row = []
        for mode in modes:
            cell = cells.get((fault, mode))
            if cell is None:
                row.append("[dim]not run[/]")
                continue
            colour = "green" if cell.as_expected else "red"
            *figures, verdict = map(_terminal, cell.lines())
            row.append("\n".join(figures) + f"\n[{colour}]{verdict}[/]")
        table.add_row(_terminal(fault), *row)
    return table


def matrix_html(cells: dict[tuple[str, str], Cell], base: Path) -> str:
    faults, modes = _axes(cells)
    head = "".join(f"<th>{escape(m)}</th>" for m in modes)
    rows = []
    for fault in faults:
        tds = []
        for mode in modes:
            cell = cells.get((fault, mode))
            if cell is None:
                tds.append(f'<td data-mode="{escape(mode)}" class="missing">not run</td>')
                continue
            *figures, verdict = cell.lines()
            link = _report_link(cell.folder, base)
            css = "ok" if cell.as_expected else "bad"
            tds.append(f'<td data-mode="{escape(mode)}" data-data="{escape(cell.data)}" '
                       f'data-stall="{"" if cell.stall_s is None else cell.stall_s}" '
                       f'data-stall-source="{cell.stall_source}" '
                       f'data-lost-writes="{"" if cell.lost_writes is None else cell.lost_writes}">'
                       + "<br>".join(escape(f) for f in figures)
                       + f'<br><span class="{css}">{escape(verdict)}</span> <a href="{link}">report</a></td>')
        rows.append(f'<tr data-fault="{escape(fault)}"><th>{escape(fault)}</th>{"".join(tds)}</tr>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{GENERATOR}<title>BeaST Lab: faults × modes'
            f"</title><style>{STYLE}</style></head><body><h1>Faults × arbitrator modes</h1>"
            f'<table id="matrix"><tr><th>fault</th>{head}</tr>{"".join(rows)}</table></body></html>\n')


def _report_link(folder: Path, base: Path) -> str:
    """The run's report.html as a link from ``base``: relative and quoted, so a folder named like a URL
    (``javascript:x``) is still a folder; a file URL when the run lies outside ``base``."""
    report = folder.resolve() / "report.html"
    try:
        return escape("./" + quote(str(report.relative_to(base.resolve()))), quote=True)
    except ValueError:
        return escape(report.as_uri(), quote=True)


def render_matrix(folders: list[Path], out_dir: Path) -> tuple[Path, dict[tuple[str, str], Cell]]:
    """Write matrix.html into ``out_dir`` from the given run folders; its path and the cells.

    LabError, having written nothing, when no folder has a usable results.json, or matrix.html is a symlink
    or a file bst did not write (it lacks ``GENERATOR``)."""
    cells = collect(folders)
    if not cells:
        raise LabError(f"no run with a usable results.json under {out_dir}; run a drill first (bst drill)")
    page = matrix_html(cells, Path(out_dir))
    path = inside(Path(out_dir), Path(out_dir).resolve() / MATRIX_NAME)
    _check_bst_wrote(path)
    replace_file(path.parent, path.name, page.encode())
    return Path(out_dir) / MATRIX_NAME, cells


def _check_bst_wrote(path: Path) -> None:
    try:
        head = read_text(path.parent, path, limit=4096).text
    except FileNotFoundError:
        return
    except (NotARegularFile, OSError):
        head = ""
    if GENERATOR not in head:
        raise LabError(f"refusing to overwrite {path}: bst did not write it (it lacks bst's generator tag); "
                       "move it away or pass another folder")
