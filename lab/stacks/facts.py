"""A fact is a command paired with its parser (pyinfra's facts): what the drill asks a host, typed.

The stack knows the command and how to read its output; the drill only runs it (``Drill.fact``) and gets
the parsed value, so no drill code ever reads a tool's text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """``command`` run on a host; ``parse`` turns its stdout into the value (a parse error raises
    ``lab.errors.ParseError``). ``saved_as`` names the folder of the run record the raw output is kept in."""

    name: str
    command: str
    parse: Callable[[str], T]
    saved_as: str
    timeout_s: float = 60.0
    reads_stderr: bool = False
    """Parse stderr when stdout is empty (``zpool status`` with no pool says so on stderr only)."""

    def read(self, stdout: str, stderr: str = "") -> T:
        return self.parse(stdout if stdout or not self.reads_stderr else stderr)
