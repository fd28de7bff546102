"""A run folder per drill, Jepsen-style: everything a person needs to read the run afterwards."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.labdir import inside
from lab.result import CommandResult
from lab.runfolder import EVENTS_NAME, EventKind


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def stamped_folder(root: Path, suffix: str = "") -> Path:
    """A new folder ``<root>/<UTC stamp><suffix>`` (``-2``, ``-3``… when taken), and ``<root>/latest`` a
    relative symlink to it: the drill's run folders and the benchmarks' folders are found the same way. A
    ``latest`` that is not a symlink is a user's file and is left alone."""
    root.mkdir(parents=True, exist_ok=True)
    base = f"{utc_stamp()}{suffix}"
    folder, number = root / base, 1
    while True:
        try:
            folder.mkdir()
            break
        except FileExistsError:
            number += 1
            folder = root / f"{base}-{number}"
    latest = root / "latest"
    if latest.is_symlink() or not latest.exists():
        latest.unlink(missing_ok=True)
        latest.symlink_to(folder.name)
    return folder


@dataclass
class RunRecord:
    """``artifacts/<UTC>-<scenario>/`` with events.jsonl, commands.jsonl, per-host logs, saved outputs.

    Every write goes straight to disk (append + flush), so an interrupted run keeps what it saw so far.
    """

    folder: Path
    scenario: str
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, root: Path, scenario: str) -> RunRecord:
        folder = stamped_folder(root, f"-{scenario}")
        (folder / "hosts").mkdir()
        record = cls(folder, scenario)
        record.event(EventKind.RUN_START, scenario=scenario)
        return record

    def _append(self, name: str, line: str) -> None:
        with self._lock, open(inside(self.folder, self.folder / name), "a") as handle:
            handle.write(line)
            handle.flush()

    def event(self, kind: EventKind | str, **data: Any) -> None:
        """One line of events.jsonl; a kind ``EventKind`` does not list is a bug (ValueError), not a new kind."""
        try:
            kind = EventKind(kind)
        except ValueError:
            raise ValueError(f"unknown event kind {kind!r}: events.jsonl holds only lab.runfolder.EventKind values"
                             ) from None
        entry = {"ts": round(time.time(), 3), "t": round(time.time() - self.started, 3), "kind": str(kind), **data}
        self._append(EVENTS_NAME, json.dumps(entry, default=str) + "\n")

    def command(self, result: CommandResult) -> None:
        """The one place a command is written: commands.jsonl and the host's log."""
        self._append("commands.jsonl", json.dumps(result.to_json()) + "\n")
        ending = "timed out" if result.timed_out else "not run" if result.exit_code is None else result.exit_code
        text = f"$ {result.command}   # [{ending}] {result.duration_s:.2f}s\n{result.stdout}"
        if result.stderr:
            text += f"[stderr]\n{result.stderr}"
        self._append(f"hosts/{result.host}.log", text if text.endswith("\n") else text + "\n")

    def append_json(self, relative: str, data: Any) -> None:
        """One JSON line appended to a file of the run folder (e.g. a plan's step outcomes)."""
        self._append(relative, json.dumps(data, default=str) + "\n")

    def save(self, relative: str, text: str) -> Path:
        """Keep one output (a ``zpool status -v``, a console log) under a readable name, inside the run
        folder (a host or file name never walks out of it)."""
        path = inside(self.folder, self.folder / relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_json(self, relative: str, data: Any) -> Path:
        return self.save(relative, json.dumps(data, indent=2, default=str) + "\n")
