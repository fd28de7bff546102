"""Ctrl-C in the middle of a drill still leaves a run folder a person can read, and no lab behind.

Runs the real drill (real VMs, the project's lab: from its `provisioned-paper` snapshot when an earlier drill
saved one) and sends SIGINT, as a terminal's Ctrl-C does, once the copy has started.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.providers import create_provider
from lab.providers.base import HostState
from lab.topology import load_topology

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[1]
INTERRUPT_AFTER = "copy-started"


def _events(folder: Path) -> list[dict]:
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _interrupt_after_copy_starts(drill: subprocess.Popen, folder: Path, log: Path) -> int:
    deadline = time.monotonic() + 1800
    while not any(e["kind"] == INTERRUPT_AFTER for e in _events(folder)):
        assert drill.poll() is None, f"the drill ended before '{INTERRUPT_AFTER}': {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no '{INTERRUPT_AFTER}' event in 30 min: {log.read_text()[-3000:]}"
        time.sleep(2)
    drill.send_signal(signal.SIGINT)
    return drill.wait(timeout=900)


def _as_in_a_terminal() -> None:
    """SIGINT as a terminal's foreground process has it. A command started in the background by a
    non-interactive shell (`cmd &`, as CI runners may do) inherits SIGINT ignored, and Python then never
    turns it into KeyboardInterrupt: the drill would run on through the Ctrl-C (seen on this machine)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("interrupt")
    artifacts, log = work / "artifacts", work / "pytest.log"
    provider = create_provider(load_topology(), "qemu")
    try:
        with log.open("w") as out:
            drill = subprocess.Popen(
                [sys.executable, "-m", "pytest", str(ROOT / "scenarios" / "failover.py"), "-p", "no:cacheprovider",
                 f"--artifacts={artifacts}", "--keep-lab=on-failure"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_as_in_a_terminal,
            )
            try:
                exit_code = _interrupt_after_copy_starts(drill, artifacts / "latest", log)
            finally:
                if drill.poll() is None:
                    drill.kill()
                    drill.wait()
        states = {s.name: s.state for s in provider.status()}
    finally:
        provider.down()
    folder = (artifacts / "latest").resolve()
    return {"exit": exit_code, "folder": folder, "events": _events(folder), "states": states,
            "log": log.read_text()}


def test_pytest_says_it_was_interrupted(interrupted_run):
    assert interrupted_run["exit"] == pytest.ExitCode.INTERRUPTED, interrupted_run["log"][-3000:]


def test_the_events_so_far_and_the_interruption_are_recorded(interrupted_run):
    kinds = [e["kind"] for e in interrupted_run["events"]]
    assert kinds[0] == "run-start"
    assert {"provisioned", INTERRUPT_AFTER, "interrupted", "run-end"} <= set(kinds)
    assert kinds.index(INTERRUPT_AFTER) < kinds.index("interrupted") < kinds.index("run-end")


def test_every_host_console_and_dmesg_is_collected(interrupted_run):
    """The console log is collected as it is: after a snapshot restore it holds only what the guest printed
    since (often nothing); the kernel's ring buffer came back with the guest's memory and starts at boot."""
    folder = interrupted_run["folder"]
    for host in load_topology().hosts:
        assert (folder / "console" / f"{host}-end.log").is_file()
        assert "Linux version" in (folder / "dmesg" / f"{host}-end.txt").read_text(errors="replace")


def test_results_and_report_say_interrupted(interrupted_run):
    folder = interrupted_run["folder"]
    results = json.loads((folder / "results.json").read_text())
    assert results["interrupted"] is True
    assert [c["claim"] for c in results["claims"]] == ["provisioned"]
    assert 'data-verdict="interrupted"' in (folder / "report.html").read_text()


def test_an_interrupted_interactive_run_keeps_its_lab_to_look_at(interrupted_run):
    assert set(interrupted_run["states"].values()) == {HostState.RUNNING}, interrupted_run["states"]
