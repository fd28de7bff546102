"""fio beside the copy: the stall placed on the host's time, and fio's verify judged as the drill's claim."""

from pathlib import Path

import pytest

from lab.drill import clock, fio_job, workload
from lab.drill.claims import FIO_CLAIM
from lab.drill.context import Drill
from lab.record import RunRecord
from lab.report.timebase import BOUND_WARN_S
from lab.result import CommandResult
from lab.runfolder import Reason
from lab.stacks import get_stack
from lab.topology import load_topology

FIO = Path(__file__).parent / "fixtures" / "parsers" / "fio"
FAULT = 1_800_000_100.0
CLIENT_BEHIND_S = 2.0
"""The client's clock runs this far behind the host's in these tests."""


def latency_log(completions: list[float]) -> str:
    """A latency log with the client's clock: each completion (host time) shifted back by CLIENT_BEHIND_S."""
    return "".join(f"{round((t - CLIENT_BEHIND_S) * 1000)}, 250000, 1, 4096, {i * 4096}, 0\n"
                   for i, t in enumerate(completions))


class FioClient:
    """A client that answers the drill's fio, clock and file commands like a real one would."""

    topo = load_topology(None)

    def __init__(self, log: str, verify: str = "verify_only_good", stack: str = "linux"):
        self.stack = get_stack(stack)
        self.files = {"write.json": (FIO / "write_pass.json").read_text(), "write.stderr": "", "write.rc": "0\n",
                      fio_job.LATENCY_LOG: log,
                      "verify-after-fault.json": (FIO / f"{verify}.json").read_text(),
                      "verify-after-fault.stderr": (FIO / f"{verify}.stderr").read_text()
                      if (FIO / f"{verify}.stderr").exists() else ""}
        self.commands = []
        self.now = FAULT + 60

    def run(self, host, cmd, timeout=60, label=""):
        self.commands.append(cmd)
        if cmd == self.stack.clock_read_command():
            return CommandResult(cmd, exit_code=0, stdout=f"{self.now - CLIENT_BEHIND_S:.6f}\n", stderr="")
        if cmd.startswith("cat "):
            name = cmd.split("/")[-1]
            if name in self.files:
                return CommandResult(cmd, exit_code=0, stdout=self.files[name], stderr="")
            return CommandResult(cmd, exit_code=1, stdout="", stderr="No such file")
        return CommandResult(cmd, exit_code=0, stdout="0\n", stderr="")


def drill_with(tmp_path, session, **facts) -> Drill:
    drill = Drill(session, RunRecord.create(tmp_path, "t"), {})
    drill.facts.update(facts)
    return drill


def test_the_stall_runs_from_the_fault_on_the_hosts_time(tmp_path, monkeypatch):
    monkeypatch.setattr(clock.time, "time", lambda: FAULT + 60)
    completions = [FAULT - 1 + i * 0.01 for i in range(100)] + [FAULT + 0.004] + \
        [FAULT + 27.5 + i * 0.01 for i in range(150)]
    drill = drill_with(tmp_path, FioClient(latency_log(completions)), fault_at=FAULT, fio_pid="42")
    clock.read_clock(drill, "clnt-1", "start")
    written = workload.collect(drill)
    assert written is not None and not written.problem and len(written.samples) == 251
    facts = drill.facts
    assert facts["failover_stall_s"] == pytest.approx(27.496, abs=0.002)
    assert facts["stall_began_after_fault_s"] == pytest.approx(0.004, abs=0.002)
    assert facts["client_clock_offset_s"] == pytest.approx(CLIENT_BEHIND_S)
    assert facts["failover_stall_source"] == "fio" and not facts["failover_stall_ongoing"]
    assert facts["fault_window"]["samples"] == 151 and facts["time_base_error_s"] <= BOUND_WARN_S
    assert (tmp_path / "latest" / "fio" / fio_job.LATENCY_LOG).read_text() == latency_log(completions)
    assert "kill -INT 42" in drill.session.commands


def test_without_a_clock_reading_no_stall_is_claimed(tmp_path):
    drill = drill_with(tmp_path, FioClient(latency_log([FAULT - 1, FAULT + 3])), fault_at=FAULT, fio_pid="42")
    drill.session.stack = get_stack("linux")
    drill.session.run = lambda host, cmd, timeout=60, label="": (
        CommandResult(cmd, exit_code=1, stdout="", stderr="") if cmd.startswith("date")
        else FioClient.run(drill.session, host, cmd, timeout, label))
    workload.collect(drill)
    assert drill.facts["failover_stall_s"] is None


def test_verified_writes_hold_and_count_no_loss(tmp_path):
    drill = drill_with(tmp_path, FioClient("", "verify_only_good"))
    judged = workload.acknowledged_writes(drill, "after-fault", FIO_CLAIM)
    claim, held, evidence = judged.claim, judged.held, judged.evidence
    assert (claim, held) == (FIO_CLAIM, True) and "16384 blocks" in evidence
    assert drill.facts["acknowledged_writes_lost"] == 0
    assert drill.facts["fio_verify"]["after-fault"] == {"verified": 16384, "failed": 0, "holds": True}


def test_corrupted_blocks_fail_the_claim_with_their_count(tmp_path):
    drill = drill_with(tmp_path, FioClient("", "verify_only_corrupt_continue"))
    judged = workload.acknowledged_writes(drill, "after-fault", FIO_CLAIM)
    held, evidence, reason = judged.held, judged.evidence, judged.reason
    assert not held and reason is Reason.DATA_DIFFERS
    assert evidence.startswith("2 block(s) failed verification") and drill.facts["acknowledged_writes_lost"] == 2
    assert (tmp_path / "latest" / "fio" / "verify-after-fault.stderr").read_text().startswith("crc32c: verify failed")


def test_a_pass_that_left_no_report_is_unreadable_data_and_an_unknown_loss(tmp_path):
    client = FioClient("")
    client.files["verify-after-fault.json"] = "fio: file:filesetup.c:1 open(/storage/beast-fio.bin) failed\n"
    drill = drill_with(tmp_path, client)
    judged = workload.acknowledged_writes(drill, "after-fault", FIO_CLAIM)
    held, evidence, reason = judged.held, judged.evidence, judged.reason
    assert not held and reason is Reason.DATA_UNREADABLE and "no report" in evidence
    assert drill.facts["acknowledged_writes_lost"] is None


def test_a_client_without_fio_is_not_measured_rather_than_passed(tmp_path):
    drill = drill_with(tmp_path, FioClient("", stack="freebsd"))
    judged = workload.acknowledged_writes(drill, "after-fault", FIO_CLAIM)
    held, evidence, reason = judged.held, judged.evidence, judged.reason
    assert not held and reason is Reason.NOT_MEASURED and "runs no fio" in evidence
    assert drill.session.commands == []


def test_the_injected_corruption_hits_a_block_fio_logged_writing():
    from lab.parsers.fio import parse_latency_log

    samples = parse_latency_log((FIO / "write_pass_log_offset_lat.1.log").read_text())

    class Named:
        session = FioClient("")

    command = fio_job.corrupt_command(Named, samples)
    assert command is not None and f"seek={4046848 // 4096} " in command and "conv=notrunc" in command
    assert fio_job.corrupt_command(Named, []) is None


def test_an_unmounted_filesystem_is_unreadable_and_fio_never_lays_out_a_new_file(tmp_path):
    class Unmounted(FioClient):
        def run(self, host, cmd, timeout=60, label=""):
            if cmd.startswith("mountpoint -q"):
                self.commands.append(cmd)
                return CommandResult(cmd, exit_code=1, stdout="", stderr="")
            return super().run(host, cmd, timeout, label)

    drill = drill_with(tmp_path, Unmounted(""))
    judged = workload.acknowledged_writes(drill, "final", FIO_CLAIM)
    held, evidence, reason = judged.held, judged.evidence, judged.reason
    assert not held and reason is Reason.DATA_UNREADABLE and "not mounted" in evidence
    assert not any(c.startswith("cd /root/beast-fio && fio") for c in drill.session.commands)
    assert "--allow_file_create=0" in fio_job.verify_command("/storage/x", "final")


def test_a_verify_pass_leaves_the_write_pass_state_for_the_next_one():
    command = fio_job.verify_command("/storage/x", "after-fault")
    assert "--verify_state_load=1" in command and "--verify_state_save=0" in command


def test_the_write_pass_counts_what_its_own_read_back_saw(tmp_path, monkeypatch):
    monkeypatch.setattr(clock.time, "time", lambda: FAULT + 60)
    drill = drill_with(tmp_path, FioClient(latency_log([FAULT - 1, FAULT + 3])), fault_at=FAULT, fio_pid="42")
    workload.collect(drill)
    assert drill.facts["fio_write_pass"]["writes"] > 0 and drill.facts["fio_write_pass"]["bad_blocks_seen"] == 0
    assert "--continue_on_error=verify" in fio_job.write_command("/storage/x")
