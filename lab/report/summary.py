"""The run at a glance in the terminal: the same reading as report.html, shorter.

Everything a run recorded (step names, errors, evidence from guests) is printed as text, never as Rich
markup (``sd 2:0:0:0: [sdb]`` keeps its ``[sdb]``) nor as terminal control codes (ESC is shown as ``\\x1b``)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table

from lab.report.fio_words import fault_window_text, fio_stall_fact_text, fio_verify_text, lost_writes_text
from lab.report.run import NOT_RECORDED, RunView, load_run, utc_text
from lab.terminal import printable

SUMMARY_FACTS = ("source_md5", "md5_after_copy", "md5_from_disk", "md5_final", "copy_seconds", "failover_stall_s",
                 "recovery_stall_s", "fenced_after_s", "takeover_timeline_s", "workload", "time_base_error_s")


def escape(text: object) -> str:
    """Run-folder text as Rich prints it literally, its control characters shown as escapes."""
    return markup_escape(printable(text))


def render_summary(run_folder: Path, console: Console) -> None:
    run = load_run(Path(run_folder))
    ended = utc_text(run.ended) if run.ended else "[yellow]interrupted: no run-end[/]"
    duration = f"{run.duration:.1f} s" if run.duration is not None else NOT_RECORDED
    console.print(f"[bold]{escape(run.scenario)}[/] on [bold]{escape(run.stack)}[/] ({escape(run.provider)}): "
                  f"{utc_text(run.started)} -> {ended}, {duration}", highlight=False)

    if run.skipped:
        console.print(f"[yellow]not read:[/] {escape('; '.join(run.skipped))}", highlight=False)

    if run.steps:
        steps = Table("step", "verdict", "error", title="Steps")
        for step in run.steps:
            steps.add_row(escape(step.name), "[green]passed[/]" if step.passed else "[bold red]FAILED[/]",
                          escape(step.error))
        console.print(steps)
    else:
        console.print("steps: [dim]not recorded[/]")

    if run.claims:
        title = "The paper's claims" + ("" if run.results is not None else " (from events.jsonl)")
        claims = Table("claim", "here", "expected", "verdict", "evidence", title=title)
        for claim in run.claims:
            claims.add_row(escape(claim.claim), "[green]reproduced[/]" if claim.held else "[yellow]not reproduced[/]",
                           escape(str(claim.expectation)),
                           "[green]as expected[/]" if claim.expected else "[bold red]UNEXPECTED[/]",
                           escape(claim.evidence))
        console.print(claims)
    else:
        console.print("claims: [dim]not recorded[/]")

    facts = run.facts
    if facts:
        console.print(printable("facts: " + ", ".join(f"{k}={facts[k]}" for k in SUMMARY_FACTS if k in facts)),
                      markup=False)
    else:
        console.print(f"facts: [dim]{escape(run.results_problem or NOT_RECORDED)}[/]")
    if run.workload == "fio" or run.fio is not None:
        _fio_lines(run, console)
    if run.probe is not None or run.workload != "fio":
        stall = run.stall
        console.print("failover stall (probe.log): " + (f"{stall.seconds:.1f} s" if stall else
                                                         f"[dim]{escape(run.probe_problem or NOT_RECORDED)}[/]"))
    for pool_file in run.pool_files:
        if pool_file.pools is None:
            console.print(f"zpool/{escape(pool_file.name)}: [yellow]did not parse[/] ({escape(pool_file.problem)})")
            continue
        for pool in pool_file.pools:
            errors = pool.errors.kind.value + (f" {', '.join(pool.errors.entries)}" if pool.errors.entries else "")
            console.print(printable(f"zpool/{pool_file.name}: {pool.name} {pool.state}, "
                                    f"CKSUM {pool.config.root.checksum_errors}, data errors: {errors}"),
                          markup=False)
    report = run.folder / "report.html"
    if report.exists():
        console.print(printable(f"report: {report}"), markup=False, highlight=False)


def _fio_lines(run: RunView, console: Console) -> None:
    """The fio stall (the drill's fact and, from the log, the report's own reading), lost writes, verify."""
    facts = run.facts
    recorded = fio_stall_fact_text(facts)
    measured = run.fio_stall()
    if measured is not None:
        stall, base = measured
        seen = (f"≥ {stall.seconds:.3f} s, no I/O completed after the fault" if stall.ongoing and stall.seconds
                else "no I/O completed after the fault" if stall.ongoing
                else f"{stall.seconds:.3f} s ± {base.error_s:.3f} s")
        loose = " [yellow](time base bound above 0.25 s)[/]" if base.too_loose else ""
        console.print(f"failover stall (fio log, host clock): {escape(seen)}{loose}", highlight=False)
    elif doubt := run.time_base_doubt():
        console.print(f"fio latency log: [yellow]time base doubted: {escape(doubt)}[/]", highlight=False)
    elif run.fio_problem and run.fio_problem != NOT_RECORDED:
        console.print(f"fio latency log: [yellow]{escape(run.fio_problem)}[/]", highlight=False)
    if recorded is not None:
        console.print(f"failover stall (results.json): {escape(recorded)}", highlight=False)
    if (window := fault_window_text(facts.get("fault_window"))) is not None:
        console.print(f"after the fault: {escape(window)}", highlight=False)
    console.print(f"acknowledged writes lost: {escape(lost_writes_text(facts))}", highlight=False)
    for name, text in fio_verify_text(facts.get("fio_verify")) or []:
        console.print(f"fio verify {escape(name)}: {escape(text)}", highlight=False)
