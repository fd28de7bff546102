"""report.html: one self-contained page per run, readable offline from a CI artifact."""

from __future__ import annotations

import base64
import json
import stat
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lab.labdir import inside
from lab.report.files import PoolFile, check_run_folder
from lab.report.fio_words import fault_window_text, fio_verify_text, lost_writes, seconds_text, verify_failed
from lab.report.run import FIO_LOG_NAME, NOT_RECORDED, RunView, load_run, utc_text
from lab.report.timebase import BOUND_WARN_S, CLOCKS_NAME, client_host
from lab.runfolder import RESULTS_NAME, ClaimVerdict
from lab.runfolder_io import kind_of, replace_file, walk_entries

REPORT_NAME = "report.html"
PLOT_NAME = "throughput.png"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1e7b1e; font-weight: 600; } .warn { color: #a06000; font-weight: 600; }
.bad { color: #b00020; font-weight: 700; } .missing { color: #888; font-style: italic; }
code, pre { font: 12px/1.35 ui-monospace, monospace; } pre { background: #f7f7f7; padding: .6em; overflow-x: auto; }
.banner { padding: .6em 1em; border-radius: 4px; margin: 1em 0; }
.banner.bad { background: #fdecee; } .banner.ok { background: #eaf6ea; } .banner.warn { background: #fff6e0; }
img { max-width: 100%; border: 1px solid #ddd; } .note { color: #555; font-size: .9em; }
"""

FACT_LABELS = {
    "source_md5": "md5 of the source",
    "md5_after_copy": "md5 of the copy right after the copy",
    "md5_from_disk": "md5 of the copy read back from disk",
    "md5_final": "md5 of the copy after recovery",
    "copy_seconds": "copy time (s)",
    "copy_exit_code": "cp exit code",
    "copy_running_at_fault": "copy still running when ctrl-a was killed",
    "failover_stall_s": "failover stall: longest gap between successful probes (s)",
    "probe_samples": "probe samples",
    "probe_failures": "failed probes",
    "recovery_stall_s": "recovery stall: longest gap between successful probes while the recovery ran (s)",
    "recovery_after_fence_stall_s": "recovery after the fencing: longest gap between successful probes (s)",
    "takeover_s": "takeover: the survivor listed the lost controller's pool (s after the fault)",
    "fenced_after_s": "fenced: the cluster's fencing of the lost controller succeeded (s after the fault)",
    "takeover_timeline_s": "where the takeover's seconds went (the survivor's cluster log, s after the fault)",
    "fault_at": "fault at (host clock)",
    "copy_started": "copy started (host clock)",
}
FIO_FACT_LABELS = {
    "workload": "the client's workload",
    "failover_stall_source": "the failover stall was measured from",
    "failover_stall_ongoing": "no I/O completed after the fault (the stall had not ended)",
    "fault_window": "the client's I/O after the fault (fio's latency log)",
    "acknowledged_writes_lost": "acknowledged writes lost (fio's verify-only passes)",
    "fio_verify": "fio's verify-only passes",
    "client_clock_offset_s": "the client's clock offset: host time minus client time (s)",
    "time_base_error_s": "bound on placing the client's times on the host's clock (s)",
}
"""Shown when the run is fio's or records them: a probe run does not list them as missing."""
FIO_STALL_LABEL = "failover stall: from the fault to the first I/O fio completed after it (s, host clock)"
MD5_FACTS = ("md5_after_copy", "md5_from_disk", "md5_final")
TIME_FACTS = ("fault_at", "copy_started")


def _missing(text: str = NOT_RECORDED) -> str:
    return f'<span class="missing">{escape(text)}</span>'


def _attr(value: Any) -> str:
    return escape(json.dumps(value) if isinstance(value, bool) else str(value), quote=True)


def _header(run: RunView) -> str:
    rows = [
        ("scenario", escape(run.scenario)),
        ("stack", escape(run.stack) if run.stack != NOT_RECORDED else _missing()),
        *((field, escape(value) if (value := run.lab_field(field)) != NOT_RECORDED else _missing())
          for field in ("fault", "arbitrator", "victim")),
        ("provider", escape(run.provider) if run.provider != NOT_RECORDED else _missing()),
        ("started", escape(utc_text(run.started)) if run.started else _missing()),
        ("ended", escape(utc_text(run.ended)) if run.ended else _missing("not recorded: the run was interrupted")),
        ("duration", f"{run.duration:.1f} s" if run.duration is not None else _missing()),
        ("run folder", f"<code>{escape(run.folder.name)}</code>"),
    ]
    body = "".join(f'<tr data-field="{name}"><th>{name}</th><td>{value}</td></tr>' for name, value in rows)
    return f'<table id="header">{body}</table>'


def _banner(run: RunView) -> str:
    if run.interrupted or run.results is None:
        why = ("it was interrupted (Ctrl-C)" if run.ended is not None
               else "results.json was not written" if run.results_problem == NOT_RECORDED
               else run.results_problem or "there is no run-end event")
        return (f'<div class="banner warn" id="verdict" data-verdict="interrupted">The run did not finish: '
                f"{escape(why)}. What it recorded before it stopped is below.</div>")
    if run.unexpected or run.failed_steps:
        parts = []
        if run.unexpected:
            parts.append("unexpected verdicts: " + ", ".join(run.unexpected))
        if run.failed_steps:
            parts.append("failed steps: " + ", ".join(run.failed_steps))
        return f'<div class="banner bad" id="verdict" data-verdict="failed">{escape("; ".join(parts))}</div>'
    return ('<div class="banner ok" id="verdict" data-verdict="passed">Every step passed and every claim '
            "came out as the expectations file says.</div>")


def _steps(run: RunView) -> str:
    steps = run.steps
    if not steps:
        return f"<p>{_missing('no step verdicts recorded')}</p>"
    rows = []
    for step in steps:
        verdict = '<span class="ok">passed</span>' if step.passed else '<span class="bad">FAILED</span>'
        duration = f"{step.duration_s:.1f} s" if step.duration_s is not None else ""
        at = f"{step.ended_s:.1f} s" if step.ended_s is not None else ""
        rows.append(f'<tr data-step="{_attr(step.name)}" data-verdict="{"passed" if step.passed else "failed"}">'
                    f"<td><code>{escape(step.name)}</code></td><td>{verdict}</td><td class=num>{at}</td>"
                    f"<td class=num>{duration}</td><td>{escape(step.error)}</td></tr>")
    return ('<table id="steps"><tr><th>step</th><th>verdict</th><th>ended at</th><th>duration</th>'
            f'<th>error</th></tr>{"".join(rows)}</table>')


def _expectation(claim: ClaimVerdict) -> str:
    """The expectations file's word, and when an earlier failure excused the claim, why."""
    text = escape(str(claim.expectation))
    if claim.excuse:
        text += f' <span class="note">→ maybe: {escape(claim.excuse)}</span>'
    return text


def _results_note(run: RunView) -> str:
    """Why results.json is not read: "not recorded", or what is wrong with it."""
    return f"{RESULTS_NAME} {run.results_problem}" if run.results_problem == NOT_RECORDED else run.results_problem


def _claims(run: RunView) -> str:
    claims = run.claims
    source = run.claims_source
    note = ("" if source == RESULTS_NAME else
            f'<p class="note">{escape(_results_note(run))}: these are the claim events the run '
            "recorded before it stopped.</p>")
    if run.unreadable_claim_events:
        note += (f'<p class="note">{run.unreadable_claim_events} claim event(s) did not match the schema and '
                 "are left out.</p>")
    if not claims:
        return note + f"<p>{_missing('no claims recorded')}</p>"
    rows = []
    for claim in claims:
        here = '<span class="ok">reproduced</span>' if claim.held else '<span class="warn">not reproduced</span>'
        verdict = '<span class="ok">as expected</span>' if claim.expected else '<span class="bad">UNEXPECTED</span>'
        rows.append(
            f'<tr data-claim="{_attr(claim.claim)}" data-held="{_attr(claim.held)}" '
            f'data-expectation="{_attr(claim.expectation)}" data-expected="{_attr(claim.expected)}" '
            f'data-reason="{_attr(claim.reason)}"><td><code>{escape(claim.claim)}</code></td>'
            f"<td>{escape(claim.text)}</td><td>{here}</td><td>{_expectation(claim)}</td><td>{verdict}</td>"
            f"<td>{escape(claim.evidence)}</td></tr>")
    return (note + f'<table id="claims" data-source="{source}"><tr><th>claim</th><th>the paper says</th>'
            "<th>here</th><th>expected</th><th>verdict</th><th>evidence</th></tr>" + "".join(rows) + "</table>")


def _fio_fact_value(key: str, value: Any) -> str | None:
    """fio's structured facts in words; None when the value is not the contract's shape."""
    if key == "acknowledged_writes_lost":
        lost = lost_writes({key: value})
        if lost is None:
            return None
        return '<span class="ok">none</span>' if lost == 0 else f'<span class="bad">{lost}</span>'
    if key == "fault_window":
        text = fault_window_text(value)
        return None if text is None else escape(text)
    if key == "fio_verify":
        passes = fio_verify_text(value)
        if passes is None:
            return None
        css = "bad" if verify_failed(value) else "ok"
        items = "".join(f'<li>{escape(name)}: <span class="{css}">{escape(text)}</span></li>'
                        for name, text in passes)
        return f"<ul>{items}</ul>"
    return None


def _fact_value(run: RunView, key: str, value: Any) -> str:
    if value is None:
        return _missing("not judged" if key == "acknowledged_writes_lost" else NOT_RECORDED)
    if (words := _fio_fact_value(key, value)) is not None:
        return words
    if key in TIME_FACTS and isinstance(value, int | float):
        return f"{escape(utc_text(value))} <span class=note>({value})</span>"
    if key in MD5_FACTS and run.facts.get("source_md5"):
        same = value == run.facts["source_md5"]
        mark = '<span class="ok">= source</span>' if same else '<span class="bad">differs from the source</span>'
        return f"<code>{escape(str(value))}</code> {mark}"
    if isinstance(value, dict):
        items = "".join(f"<li><code>{escape(str(k))}</code>: {escape(str(v))}</li>" for k, v in value.items())
        return f"<ul>{items}</ul>"
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    return f"<code>{escape(str(value))}</code>" if "md5" in key else escape(str(value))


def _facts(run: RunView) -> str:
    facts = run.facts
    fio = run.workload == "fio"
    labels = {**FACT_LABELS, **{k: v for k, v in FIO_FACT_LABELS.items() if fio or k in facts}}
    if facts.get("failover_stall_source") == "fio" or (fio and facts.get("failover_stall_source") is None):
        labels["failover_stall_s"] = FIO_STALL_LABEL
    keys = list(labels) + [k for k in facts if k not in labels]
    rows = []
    for key in keys:
        label = labels.get(key, key.replace("_", " "))
        rows.append(f'<tr data-fact="{_attr(key)}"><th>{escape(label)}</th>'
                    f"<td>{_fact_value(run, key, facts.get(key))}</td></tr>")
    note = "" if run.results is not None else f'<p class="note">{escape(_results_note(run))}.</p>'
    return note + f'<table id="facts">{"".join(rows)}</table>'


def _probe_missing(run: RunView) -> str:
    if run.probe is None:
        return f"{NOT_RECORDED} (no probe.log)"
    return run.probe_problem if not run.probe else ""


def _stall(run: RunView) -> str:
    stall = run.stall
    if stall is None:
        why = _probe_missing(run) or "fewer than two successful probes"
        return f'<p>Failover stall: <span id="stall" data-seconds="">{_missing(why)}</span></p>'
    samples = run.probe or []
    failed = sum(not s.ok for s in samples)
    origin = min(s.started for s in samples)
    never = " No probe succeeded after it: the client's I/O never came back." if stall.ongoing else ""
    damaged = (f" {run.damaged_probe_lines} damaged line(s) of probe.log were skipped."
               if run.damaged_probe_lines else "")
    return (f'<p>Failover stall (longest gap between two successful probes, from probe.log): '
            f'<strong id="stall" data-seconds="{stall.seconds}">{stall.seconds:.1f} s</strong>, '
            f"from {stall.after - origin:.1f} s to {stall.before - origin:.1f} s after the first probe (client clock). "
            f"{len(samples)} probes, {failed} failed.{never}{damaged}</p>")


def _plot(run: RunView, png: bytes | None) -> str:
    if png is None:
        why = run.probe_problem if run.probe else _probe_missing(run)
        return f'<p>{_missing(why)}</p>'
    clocks = run.clock_check()
    encoded = base64.b64encode(png).decode("ascii")
    return (f'<img id="throughput" alt="client I/O over time" src="data:image/png;base64,{encoded}">'
            f'<p class="note">Also saved as <a href="{href(PLOT_NAME)}">{PLOT_NAME}</a>. Probe times are the client\'s '
            f"clock, events the host's: {escape(clocks.note)}.</p>")


def _fio_stall(run: RunView) -> str:
    measured = run.fio_stall()
    damaged = (f" {run.damaged_fio_lines} damaged line(s) of {FIO_LOG_NAME} were skipped."
               if run.damaged_fio_lines else "")
    count = f"{len(run.fio or [])} I/Os logged.{damaged}"
    if measured is None:
        why = "no fault recorded" if run.fault_at is None else "the client's times cannot be placed on the host's"
        return (f'<p>Failover stall (fio): <span id="fio-stall" data-seconds="">{_missing(why)}</span>. '
                f"{escape(count)}</p>")
    stall, base = measured
    if stall.ongoing:
        text = (f"no I/O completed after the fault: ≥ {stall.seconds:.3f} s to the end of the log"
                if stall.seconds is not None else "no I/O completed after the fault")
    else:
        text = f"{stall.seconds:.3f} s ± {base.error_s:.3f} s"
    previous = (f" The last I/O before it completed {stall.fault - stall.last_before:.3f} s before the fault."
                if stall.last_before is not None else "")
    return (f'<p>Failover stall (the longest pause in fio\'s completions that began at the fault or within a '
            f'minute after it, host clock): '
            f'<strong id="fio-stall" data-seconds="{"" if stall.seconds is None else stall.seconds}" '
            f'data-ongoing="{_attr(stall.ongoing)}">{escape(text)}</strong>.{escape(previous)} {escape(count)}</p>')


def _time_base(run: RunView) -> str:
    """Which clock reading placed fio's times, and how far off they may be."""
    base = run.time_base()
    damaged = (f" {run.damaged_clock_lines} line(s) of {CLOCKS_NAME} were not readings and were skipped."
               if run.damaged_clock_lines else "")
    if base is None:
        host = client_host(run.clocks, run.facts) or "the client"
        return (f'<p id="time-base" data-error-s="" class="warn">Time base: no clock reading for '
                f"{escape(host)} in {CLOCKS_NAME} and no client_clock_offset_s fact: fio's times are shown on the "
                f"client's clock, not aligned with the fault or the cluster's marks.{escape(damaged)}</p>")
    recorded = run.facts.get("time_base_error_s")
    drill = (f" The drill recorded time_base_error_s = {recorded} s."
             if isinstance(recorded, int | float) and not isinstance(recorded, bool)
             and abs(recorded - base.error_s) > 0.0005 else "")
    if doubt := run.time_base_doubt():
        return (f'<p id="time-base" class="warn" data-error-s="" data-doubt="true">Time base: {escape(base.note())}; '
                f"but {escape(doubt)}.{escape(damaged)}</p>")
    css = "warn" if base.too_loose else "note"
    return (f'<p id="time-base" class="{css}" data-error-s="{base.error_s}" data-offset-s="{base.offset_s}" '
            f'data-too-loose="{_attr(base.too_loose)}">Time base: {escape(base.note())}.'
            f"{escape(drill)}{escape(damaged)}"
            + ("" if base.too_loose else f" (within the {BOUND_WARN_S} s this report accepts)") + "</p>")


def _fio_plot(run: RunView, png: bytes | None) -> str:
    if png is None:
        return f"<p>{_missing('plot not drawn')}</p>"
    encoded = base64.b64encode(png).decode("ascii")
    return (f'<img id="throughput" data-source="fio" alt="every I/O fio logged, latency over host time" '
            f'src="data:image/png;base64,{encoded}"><p class="note">Also saved as <a href="{href(PLOT_NAME)}">'
            f"{PLOT_NAME}</a>. Each point is one I/O where fio accounted its completion, at its latency "
            f"({escape(_latency_span(run))}).</p>")


def _latency_span(run: RunView) -> str:
    latencies = [s.latency for s in run.fio or []]
    return f"{seconds_text(min(latencies))} to {seconds_text(max(latencies))}" if latencies else "none"


def _client_io(run: RunView, png: bytes | None) -> str:
    """fio's stall, time base and plot when the run has its log; the probe's otherwise (and beside it)."""
    if not run.fio:
        note = (f'<p class="note" id="fio-problem">{escape(run.fio_problem)}.</p>'
                if run.fio_problem != NOT_RECORDED else "")
        return note + _stall(run) + _plot(run, png)
    probe = _stall(run) if run.probe is not None else ""
    return _fio_stall(run) + _time_base(run) + _fio_plot(run, png) + probe


def _pool_file(pool_file: PoolFile) -> str:
    raw = f"<pre>{escape(pool_file.text)}</pre>"
    if pool_file.pools is None:
        return (f'<h3 data-pool-file="{_attr(pool_file.name)}" data-parsed="false">{escape(pool_file.name)}</h3>'
                f'<p class="warn">did not parse ({escape(pool_file.problem)}); the saved text:</p>{raw}')
    if not pool_file.pools:
        body = f"<p>{_missing('no pools imported')}</p>"
    else:
        rows = []
        for pool in pool_file.pools:
            root = pool.config.root
            counts = [root.read_errors, root.write_errors, root.checksum_errors]
            leaf_cksum = sum(v.checksum_errors or 0 for v in pool.config.walk() if v is not root)
            state_class = "ok" if pool.state == "ONLINE" else "bad"
            errors = pool.errors.kind.value + (": " + ", ".join(pool.errors.entries) if pool.errors.entries else "")
            errors_class = "ok" if pool.errors.kind.value == "none" else "bad"
            rows.append(
                f'<tr data-pool="{_attr(pool.name)}" data-cksum="{_attr(root.checksum_errors)}" '
                f'data-errors="{_attr(pool.errors.kind.value)}"><td><code>{escape(pool.name)}</code></td>'
                f'<td class="{state_class}">{escape(pool.state)}</td>'
                + "".join(f"<td class=num>{'' if c is None else c}</td>" for c in counts)
                + f"<td class=num>{leaf_cksum}</td><td>{escape(pool.scan.text if pool.scan else '')}</td>"
                f'<td class="{errors_class}">{escape(errors)}</td></tr>')
        body = ("<table><tr><th>pool</th><th>state</th><th>READ</th><th>WRITE</th><th>CKSUM</th>"
                "<th>CKSUM on devices</th><th>scan</th><th>data errors</th></tr>" + "".join(rows) + "</table>")
    return (f'<h3 data-pool-file="{_attr(pool_file.name)}" data-parsed="true">{escape(pool_file.name)}</h3>{body}'
            f"<details><summary>saved text</summary>{raw}</details>")


def _pools(run: RunView) -> str:
    if not run.pool_files:
        return f"<p>{_missing()}</p>"
    return '<div id="pools">' + "".join(_pool_file(f) for f in run.pool_files) + "</div>"


def href(relative: str) -> str:
    """A link to a file of the folder the page sits in, whatever its name: ``javascript:x`` stays a file."""
    return escape("./" + quote(relative), quote=True)


def _files(run: RunView) -> str:
    """Every regular file the run left, linked; anything else (a symlink, a FIFO) named as not linked."""
    names, others = [], []
    for name, mode in walk_entries(run.folder):
        if stat.S_ISREG(mode) and Path(name).name not in (REPORT_NAME, PLOT_NAME):
            names.append(name)
        elif not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            others.append(f"{name} ({kind_of(mode)})")
    skipped = ("" if not others else '<p class="note" id="not-files">Not read and not linked, as they are not '
               f"files: {escape(', '.join(sorted(others)))}.</p>")
    if not names:
        return f"<p>{_missing()}</p>" + skipped
    return ("<ul>" + "".join(f'<li><a href="{href(n)}">{escape(n)}</a></li>' for n in sorted(names)) + "</ul>"
            + skipped)


def report_html(run: RunView, png: bytes | None) -> str:
    damaged = (f'<p class="note">{run.damaged_event_lines} damaged line(s) of events.jsonl were skipped.</p>'
               if run.damaged_event_lines else "")
    if unknown := run.unknown_event_kinds:
        damaged += (f'<p class="note" id="unknown-events">events.jsonl holds kinds this version does not know, '
                    f"kept but not read: {escape(', '.join(unknown))}.</p>")
    events = "" if run.events else f"<p>{_missing('events.jsonl not recorded')}</p>"
    if run.skipped:
        damaged += ('<p class="note" id="skipped">Not read, or read only in part: '
                    f"{escape('; '.join(run.skipped))}.</p>")
    sections = [
        ("Run", _header(run) + _banner(run) + damaged + events),
        ("Steps", _steps(run)),
        ("The paper's claims", _claims(run)),
        ("Facts", _facts(run)),
        ("Client I/O", _client_io(run, png)),
        ("Pools (saved zpool status)", _pools(run)),
        ("Everything the run left", _files(run)),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>{content}" for title, content in sections)
    title = f"BeaST Lab: {run.scenario} ({run.stack}), {utc_text(run.started)}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n")


def render_report(run_folder: Path) -> Path:
    """Write report.html (and throughput.png when there are probe samples) into the run folder; its path.

    LabError, having written nothing, when the folder is not a run folder or either file is a symlink or
    anything but a file. Each is written anew and renamed over the old one, so a hard link's other name
    (a file outside the folder) keeps its text."""
    folder = check_run_folder(run_folder)
    report_path, plot_path = inside(folder, folder / REPORT_NAME), inside(folder, folder / PLOT_NAME)
    run = load_run(folder)
    png = None
    if run.fio or run.probe:
        try:
            from lab.report.fio_plot import fio_png
            from lab.report.plot import probe_png
        except ImportError:
            run.probe_problem = "plot not drawn: matplotlib is not installed (pip install 'beast-lab[report]')"
        else:
            png = fio_png(run) if run.fio else probe_png(run)
    page = report_html(run, png)
    if png is not None:
        replace_file(plot_path.parent, plot_path.name, png)
    replace_file(report_path.parent, report_path.name, page.encode())
    return Path(run_folder) / REPORT_NAME
