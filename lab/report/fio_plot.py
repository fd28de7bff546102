"""The client's I/O over the run from fio's latency log: every I/O at the host time it completed, so the
fault, the stall and the cluster's takeover marks sit on one clock."""

from __future__ import annotations

from matplotlib import pyplot
from matplotlib.figure import Figure

from lab.parsers.fio import Direction
from lab.report.plot import FAULT_COLOUR, STALL_COLOUR, draw_takeover_marks, figure_png
from lab.report.run import RunView

DIRECTIONS = ((Direction.WRITE, "#1f77b4", "o", "write"), (Direction.READ, "#2a7d2a", "^", "read (verify backlog)"),
              (Direction.TRIM, "#7f7f7f", "s", "trim"))
SHORTEST_S = 1e-6
"""fio logs latency in nanoseconds; a 0 would fall off the log scale."""


def fio_figure(run: RunView) -> Figure | None:
    """Latency of every I/O (log scale) over host time; None without fio samples.

    Without a time base the I/Os stay on the client's clock and nothing host-timed is drawn over them."""
    samples = run.fio
    if not samples:
        return None
    base, fault, doubt = run.placed_time_base(), run.fault_at, run.time_base_doubt()
    shift = base.offset_s if base is not None else 0.0
    placed = base is not None and fault is not None
    origin = fault if placed else samples[0].completed + shift
    figure, ax = pyplot.subplots(figsize=(10, 5))
    for direction, colour, marker, label in DIRECTIONS:
        chosen = [s for s in samples if s.direction is direction]
        if chosen:
            ax.scatter([s.completed + shift - origin for s in chosen], [max(s.latency, SHORTEST_S) for s in chosen],
                       s=6, color=colour, marker=marker, label=f"{label} ({len(chosen)})", alpha=0.6,
                       linewidths=0, rasterized=True, zorder=3)
    ax.set_yscale("log")
    ax.set_ylabel("I/O latency (s, log scale)")
    ax.set_xlabel("seconds after the fault (host clock)" if placed
                  else "seconds since the first I/O (client clock: not placed on the host's)")
    ax.grid(alpha=0.3, which="both")
    if placed:
        _fault_overlay(run, ax)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    figure.suptitle(f"Client I/O (fio) during {run.scenario} ({run.stack})", fontsize=11)
    if doubt:
        note = doubt
    else:
        note = base.note() if base is not None else "no clock reading for the client: fault and marks not drawn"
    figure.text(0.99, 0.005, note, ha="right", va="bottom", fontsize=7,
                color=FAULT_COLOUR if base is None or base.too_loose else "#555555")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def _fault_overlay(run: RunView, ax) -> None:
    """The fault as a line at 0, the stall (fault to fio's first completion after it) shaded, the marks."""
    measured = run.fio_stall()
    if measured is None:
        return
    stall, _ = measured
    ax.axvline(0, color=FAULT_COLOUR, linewidth=1.5, label=f"fault ({run.fault_host})")
    if stall.first_after is not None:
        ax.axvspan(0, stall.first_after - stall.fault, color=STALL_COLOUR, alpha=0.15,
                   label=f"stall: {stall.seconds:.3f} s without a completed I/O")
    elif stall.seconds is not None:
        ax.axvspan(0, stall.seconds, color=STALL_COLOUR, alpha=0.15,
                   label=f"stall: no I/O completed in the {stall.seconds:.1f} s logged after the fault")
    draw_takeover_marks(run, ax, stall.fault, stall.fault, ax.get_ylim()[1])


def fio_png(run: RunView) -> bytes | None:
    figure = fio_figure(run)
    return None if figure is None else figure_png(figure)
