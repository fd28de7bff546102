"""Turn a run folder into report.html and a terminal summary, whatever state the run left it in."""

from lab.report.html import render_report
from lab.report.run import NOT_RECORDED, RunView, load_run
from lab.report.summary import render_summary

__all__ = ["NOT_RECORDED", "RunView", "load_run", "render_report", "render_summary"]
