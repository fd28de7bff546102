"""The consoles every `bst` command prints to, and its one-line errors: shared by lab/cli.py and the
command groups it mounts (lab/cli_image.py), which so never import each other.

Text is printed as text, never as Rich markup (``escape``), and ``printable``: a guest's or a file's control
characters never reach the terminal as commands (see lab/cli.py)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from lab.terminal import printable

out = Console()
err = Console(stderr=True)


def error_line(message: str) -> None:
    """``error: MESSAGE`` on stderr, on one line whatever the message holds."""
    err.print(f"[bold red]error:[/] {escape(printable(' '.join(message.split())))}", highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """The command's one-line error, and exit code 2."""
    error_line(message)
    raise typer.Exit(2)


__all__ = ["err", "error_line", "fail", "out"]
