"""The client's I/O over the run, from the probe: what the failover looked like from the client's side."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot  # noqa: E402 - the backend has to be chosen first
from matplotlib.figure import Figure  # noqa: E402

from lab.report.run import RunView  # noqa: E402

OK_COLOUR = "#2a7d2a"
FAIL_COLOUR = "#c0392b"
FAULT_COLOUR = "#e67e22"
STALL_COLOUR = "#8e44ad"


def _fault_overlay(run: RunView, axes: list, origin: float, end: float) -> str:
    """Shade fault -> first successful probe after it when the clocks agree; otherwise the note that they don't."""
    clocks = run.clock_check()
    window = run.fault_window()
    if window is None:
        return "fault not recorded" if run.fault_at is None else ""
    if not clocks.close:
        return f"fault not drawn: {clocks.note}"
    fault, resumed = window
    start = fault - origin
    stop = (resumed if resumed is not None else origin + end) - origin
    label = (f"fault ({run.fault_host}) until the first successful probe: {stop - start:.1f} s" if resumed
             else f"fault ({run.fault_host}); no successful probe after it")
    for number, ax in enumerate(axes):
        ax.axvspan(start, stop, color=FAULT_COLOUR, alpha=0.18, label=label if number == 0 else None)
        ax.axvline(start, color=FAULT_COLOUR, linewidth=1.2)
    return clocks.note


TAKEOVER_COLOUR = "#2c3e50"
TAKEOVER_MARKS = {"membership without the victim": "detected", "fenced": "fenced", "imported": "imported",
                  "map switched": "map switched"}
"""Which marks of the drill's takeover timeline (lab.drill.cluster.TIMELINE_MARKS) the plot shows, and as what."""


def draw_takeover_marks(run: RunView, ax, fault: float, origin: float, top: float) -> None:
    """The cluster's takeover beside the client's I/O: a dotted line at each mark of the survivor's journal
    (seconds after the fault), its label written down from ``top``."""
    timeline = run.facts.get("takeover_timeline_s")
    if not isinstance(timeline, dict):
        return
    for mark, label in TAKEOVER_MARKS.items():
        seconds = timeline.get(mark)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            continue
        x = fault + seconds - origin
        ax.axvline(x, color=TAKEOVER_COLOUR, linestyle=":", linewidth=1)
        ax.text(x, top, f" {label} +{seconds:g} s", color=TAKEOVER_COLOUR, rotation=90, va="top",
                ha="right", fontsize=7)


def _takeover_overlay(run: RunView, ax, origin: float) -> None:
    """The takeover marks on the probe's plot, when the guest and host clocks agree."""
    fault = run.fault_at
    if fault is None or not run.clock_check().close:
        return
    draw_takeover_marks(run, ax, fault, origin, ax.get_ylim()[1] * 0.97)


def _stall_overlay(run: RunView, ax, origin: float) -> None:
    stall = run.stall
    if stall is None:
        return
    after, before = stall.after - origin, stall.before - origin
    top = ax.get_ylim()[1]
    ax.annotate("", xy=(before, top * 0.55), xytext=(after, top * 0.55),
                arrowprops={"arrowstyle": "<->", "color": STALL_COLOUR, "linewidth": 1.5})
    ax.text((after + before) / 2, top * 0.57, f"longest stall {stall.seconds:.1f} s", color=STALL_COLOUR,
            ha="center", va="bottom", fontsize=9)
    for x in (after, before):
        ax.axvline(x, color=STALL_COLOUR, linestyle="--", linewidth=1)


def probe_figure(run: RunView) -> Figure | None:
    """Latency of each probe (top) and successful probes completed per second (bottom); None without samples."""
    samples = run.probe
    if not samples:
        return None
    origin = min(s.started for s in samples)
    end = max(s.finished for s in samples) - origin
    figure, (latency_ax, rate_ax) = pyplot.subplots(2, 1, figsize=(10, 5.5), sharex=True,
                                                   gridspec_kw={"height_ratios": [3, 2]})
    for ok, colour, marker, label in ((True, OK_COLOUR, "o", "probe ok"), (False, FAIL_COLOUR, "x", "probe failed")):
        chosen = [s for s in samples if s.ok is ok]
        if chosen:
            latency_ax.scatter([s.finished - origin for s in chosen], [s.finished - s.started for s in chosen],
                               s=14, color=colour, marker=marker, label=label, zorder=3)
    latency_ax.set_ylabel("probe latency (s)")
    latency_ax.set_ylim(0, max(max(s.finished - s.started for s in samples) * 1.25, 1.0))
    latency_ax.grid(alpha=0.3)

    seconds = max(int(math.ceil(end)), 1)
    per_second = [0] * (seconds + 1)
    for sample in samples:
        if sample.ok:
            per_second[max(int(sample.finished - origin), 0)] += 1
    rate_ax.step(range(len(per_second)), per_second, where="post", color=OK_COLOUR)
    rate_ax.fill_between(range(len(per_second)), per_second, step="post", color=OK_COLOUR, alpha=0.25)
    rate_ax.set_ylabel("successful probes / s")
    rate_ax.set_xlabel("seconds since the first probe (client clock)")
    rate_ax.set_ylim(0, max(per_second) * 1.3 + 0.5)
    rate_ax.grid(alpha=0.3)

    note = _fault_overlay(run, [latency_ax, rate_ax], origin, end)
    _stall_overlay(run, latency_ax, origin)
    _takeover_overlay(run, latency_ax, origin)
    latency_ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    title = f"Client I/O during {run.scenario} ({run.stack})"
    figure.suptitle(title, fontsize=11)
    if note:
        figure.text(0.99, 0.005, note, ha="right", va="bottom", fontsize=8, color="#555555")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def probe_png(run: RunView) -> bytes | None:
    figure = probe_figure(run)
    return None if figure is None else figure_png(figure)


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=100)
    finally:
        pyplot.close(figure)
    return buffer.getvalue()
