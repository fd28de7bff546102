"""bench.html and the terminal table of a failover benchmark, from bench.json's contents.

Everything shown comes from run data, which may be hand-edited or name hostile run folders: text is
HTML-escaped, and a run's report is linked only by a relative path below the bench folder.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import PurePosixPath
from typing import Any

from rich.table import Table
from rich.text import Text

from lab.bench_stats import (
    DATA_LOST_RULE,
    NOT_HELD,
    P90_RULE,
    ModeStats,
    data_text,
    lost_data,
    mode_of,
    mode_stats,
    run_number,
    seconds_text,
    verdicts,
)
from lab.report.html import STYLE, href
from lab.runfolder import as_number

BENCH_HTML = "bench.html"
GENERATOR = '<meta name="generator" content="beast-lab bench">'


def strip_png(stats: dict[str, ModeStats]) -> bytes | None:
    """Every run's stall as a dot, one row per mode; a run that lost data is a red cross. None without stalls."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    modes = [m for m, s in stats.items() if s.stalls]
    if not modes:
        return None
    figure = Figure(figsize=(8, 0.8 + 0.7 * len(modes)))
    ax = figure.add_subplot()
    for row, mode in enumerate(modes):
        for index, (stall, lost) in enumerate(zip(stats[mode].stalls, stats[mode].lost, strict=True)):
            y = row + ((index % 5) - 2) * 0.06
            ax.plot(stall, y, "x" if lost else "o", color="#c0392b" if lost else "#2a7d2a", alpha=0.8)
        median = stats[mode].stall_median
        ax.plot([median, median], [row - 0.25, row + 0.25], color="#333", linewidth=1)
    ax.set_yticks(range(len(modes)), [m.replace("$", r"\$") for m in modes])
    ax.set_ylim(-0.6, len(modes) - 0.4)
    ax.set_xlabel("failover stall (s): longest gap between successful probes")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def run_link(run: dict[str, Any]) -> str:
    """The run's report.html, linked when its folder is a relative path below the bench folder; else its name."""
    folder = run.get("run_folder")
    if not isinstance(folder, str) or not folder:
        return '<span class="missing">no run folder</span>'
    path = PurePosixPath(folder)
    if path.is_absolute() or ".." in path.parts or "\\" in folder:
        return f'{escape(folder)} <span class="missing">(not below the bench folder: not linked)</span>'
    return f'<a href="{href(str(path / "report.html"))}">{escape(folder)}</a>'


def _summary(stats: dict[str, ModeStats]) -> str:
    rows = "".join(
        f'<tr data-mode="{escape(s.mode, quote=True)}"><th>{escape(s.mode)}</th><td class="num">{s.counted}</td>'
        + "".join(f'<td class="num">{seconds_text(v)}</td>'
                  for v in (s.stall_min, s.stall_median, s.stall_p90, s.stall_max))
        + f'<td class="{"bad" if s.data_lost else "ok"}">{escape(data_text(s))}</td>'
        f'<td class="num">{s.unexpected_runs}</td><td class="num">{s.failed_runs}</td></tr>'
        for s in stats.values())
    return ('<table id="modes"><tr><th>mode</th><th>runs</th><th>stall min s</th><th>median s</th><th>p90 s</th>'
            "<th>max s</th><th>data</th><th>runs with unexpected verdicts</th><th>runs with failed steps</th></tr>"
            f'{rows}</table><p class="note">{escape(P90_RULE)}; median of an even count: the mean of the middle two. '
            f"{escape(DATA_LOST_RULE)}. Interrupted runs are listed below "
            "but not counted.</p>")


def _numbers(numbers: list[int]) -> str:
    return escape(", ".join(map(str, numbers)))


def _flaky(stats: dict[str, ModeStats]) -> str:
    rows = "".join(f"<tr><td>{escape(s.mode)}</td><td>{escape(f.claim)}</td><td>{_numbers(f.held)}</td>"
                   f"<td>{_numbers(f.not_held)}</td></tr>" for s in stats.values() for f in s.flaky)
    if not rows:
        return '<p id="flaky" class="ok">Every claim had the same verdict in every run of its mode.</p>'
    return ('<p class="bad">A claim whose verdict differs between runs of one mode is a finding.</p>'
            '<table id="flaky"><tr><th>mode</th><th>claim</th><th>held in runs</th><th>not held in runs</th></tr>'
            f"{rows}</table>")


def _cell(value: Any) -> str:
    number = as_number(value)
    return seconds_text(number) if number is not None else '<span class="missing">—</span>'


def _listed(run: dict[str, Any], key: str) -> list[str]:
    value = run.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def _findings(run: dict[str, Any]) -> list[str]:
    """What went wrong in a run: unexpected verdicts, failed steps, the error that stopped it, Ctrl-C."""
    found = [f"{label}: {', '.join(names)}" for label, key in (("unexpected", "unexpected"),
                                                                ("failed", "failed_steps"))
             if (names := _listed(run, key))]
    if run.get("error"):
        found.append(f"error: {run['error']}")
    return found + (["interrupted"] if run.get("interrupted") is True else [])


DATA_CELLS = {None: '<span class="missing">not judged</span>', True: '<span class="bad">lost</span>',
              False: "intact"}


def _runs(runs: list[dict[str, Any]]) -> str:
    rows = []
    for position, run in enumerate(runs, 1):
        not_held = [claim for claim, verdict in verdicts(run).items() if verdict == NOT_HELD]
        findings = _findings(run)
        cells = [escape(mode_of(run)), str(run_number(run, position)), escape(str(run.get("started_at", ""))),
                 _cell(run.get("seconds")), _cell(run.get("stall_s")), escape(str(run.get("stall_source") or "")),
                 DATA_CELLS[lost_data(run)], escape(", ".join(not_held)) or "—",
                 f'<span class="{"bad" if findings else "ok"}">{escape("; ".join(findings)) or "none"}</span>',
                 run_link(run)]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return ('<table id="runs"><tr><th>mode</th><th>run</th><th>started</th><th>s</th><th>stall s</th><th>source</th>'
            "<th>data</th><th>claims not held</th><th>findings</th><th>report</th></tr>" + "".join(rows) + "</table>")


def bench_html(data: dict[str, Any], png: bytes | None = None) -> str:
    """The page for one bench.json's contents; ``png`` the strip plot (drawn here when not given)."""
    runs = [r for r in data.get("runs", []) if isinstance(r, dict)] if isinstance(data.get("runs"), list) else []
    stats = mode_stats(runs)
    if png is None:
        try:
            png = strip_png(stats)
        except ImportError:
            png = None
    plot = (f'<img id="strip" alt="failover stall per run and mode" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}"><p class="note">One dot per run; a red cross: that run lost data; '
            "the bar: the median.</p>" if png else '<p class="missing">no stall was measured</p>')
    machine = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    about = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in (
        ("measured at", data.get("measured_at", "")), ("command", data.get("command", "")),
        *((str(k), v) for k, v in machine.items())))
    interrupted = ('<p class="banner bad">The benchmark was interrupted: these are the runs that finished.</p>'
                   if data.get("interrupted") is True else "")
    sections = [("Machine", f"<table>{about}</table>{interrupted}"), ("Stall and data per mode", _summary(stats)),
                ("Every run", plot + _runs(runs)), ("Flaky verdicts", _flaky(stats))]
    body = "".join(f"<h2>{escape(title)}</h2>{content}" for title, content in sections)
    title = "BeaST Lab: kill-ctrl-a failover benchmark"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{GENERATOR}<title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>\n")


def stats_table(runs: list[dict[str, Any]]) -> Table:
    """The per-mode figures of bench.html as a rich table for the terminal."""
    table = Table("mode", "runs", "stall min s", "median s", "p90 s", "max s", "data", "unexpected", "failed",
                  "flaky claims", title="kill-ctrl-a failover drills")
    for s in mode_stats(runs).values():
        stalls = (seconds_text(v) for v in (s.stall_min, s.stall_median, s.stall_p90, s.stall_max))
        cells = [s.mode, str(s.counted), *stalls, data_text(s), str(s.unexpected_runs), str(s.failed_runs),
                 ", ".join(f.claim for f in s.flaky) or "none"]
        table.add_row(*(Text(cell) for cell in cells))
    return table
