"""The workload tells a slow copy from a stuck one, and reports what it saw."""


import pytest

from lab.drill import workload
from lab.drill.context import Drill
from lab.record import RunRecord
from lab.result import CommandResult
from lab.stacks import get_stack
from lab.topology import load_topology


def test_a_growing_copy_is_never_stalled_and_a_still_one_is_after_the_limit():
    watch = workload.StallWatch(limit_s=100)
    assert watch.stalled_for(None, 0) is None  # the file does not exist yet
    assert watch.stalled_for(10, 50) is None
    assert watch.stalled_for(20, 140) is None  # slow, but it grew
    assert watch.stalled_for(20, 239) is None
    assert watch.stalled_for(20, 240) == 100
    assert watch.stalled_for(None, 300) == 160  # an unreadable size is not growth


class StuckCopyClient:
    """A client whose copy stopped at 4 MiB: the copy never writes its exit code."""

    topo = load_topology(None)
    stack = get_stack("linux")

    def __init__(self):
        self.commands = []

    def run(self, host, cmd, timeout=60, label=""):
        self.commands.append(cmd)
        return CommandResult("", exit_code=0, stdout="size 4194304\n", stderr="")


def test_a_copy_that_stops_growing_is_reported_stalled_long_before_its_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(workload, "COPY_STALL_S", 0.3)
    session = StuckCopyClient()
    seen = []
    drill = Drill(session, RunRecord.create(tmp_path, "t"), {}, on_progress=seen.append)
    drill.facts["copy_started"] = 0.0
    monkeypatch.setattr(Drill, "wait_for", lambda self, what, probe, timeout, interval=2.0: _poll(probe))
    with pytest.raises(workload.CopyStalled, match=r"no progress for \d+ s \(its file stayed at 4194304 bytes\)"):
        workload.wait(drill)
    assert drill.facts["copy_stalled_at_bytes"] == 4194304 and "copy_seconds" in drill.facts
    assert f"{session.topo.client.mountpoint}/beast-copy.bin" in session.commands[0]
    assert seen[0] == f"copy: 4 of {session.topo.drill.copy_size_mb} MiB written"


def _poll(probe):
    """Drill.wait_for without its long timeout: gives up after about 10 s."""
    import time

    for _ in range(200):
        if value := probe():
            return value
        time.sleep(0.05)
    raise AssertionError("the copy was never reported stalled")


def test_a_filesystem_that_cannot_be_mounted_is_read_back_as_unreadable_with_why(tmp_path):
    class Client(StuckCopyClient):
        def run(self, host, cmd, timeout=60, label=""):
            if cmd.startswith("mount"):
                return CommandResult("", exit_code=32, stdout="", stderr="wrong fs type, bad option\nmore\n")
            return CommandResult("", exit_code=0, stdout="EXT4-fs: no journal found\n", stderr="")

    drill = Drill(Client(), RunRecord.create(tmp_path, "t"), {})
    back = workload.remounted_md5(drill, "final")
    assert back.md5 is None and back.detail == "wrong fs type, bad option"
    assert "kernel: EXT4-fs: no journal found" in back.how
