"""``python -m lab.report [RUN_FOLDER]``: render report.html and print the summary (default artifacts/latest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from lab.errors import LabError
from lab.report.html import render_report
from lab.report.summary import render_summary

DEFAULT_RUN = Path("artifacts") / "latest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.report", description=__doc__)
    parser.add_argument("run", nargs="?", type=Path, default=DEFAULT_RUN, help="run folder (default: %(default)s)")
    args = parser.parse_args(argv)
    console = Console()
    folder = args.run
    if not folder.is_dir():
        console.print(f"[red]no run folder at {escape(str(folder))}[/]: run a drill first (nox -s drill) or name a "
                      "folder under artifacts/")
        return 2
    try:
        render_report(folder)
    except LabError as error:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        return 2
    render_summary(folder, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
