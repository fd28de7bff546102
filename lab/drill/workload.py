"""The drill's workload: a file copied to the client's filesystem while fio (or, where the client has no
fio, a write/read probe) runs beside it.

The workload only does I/O on the client and records what it saw (facts, fio/, probe.log, clocks.jsonl);
judging it is the steps' and checks' business, striking the lab the nemesis's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from lab.drill import clock, fio_job
from lab.drill.claims import Judged
from lab.drill.context import Drill, StepError
from lab.drill.fio_checks import Judgement, acknowledged_writes_survive, window_latency
from lab.parsers.fio import LatencySample
from lab.parsers.fio_stall import stall_from_fault
from lab.parsers.probe import ProbeSample, longest_stall, parse_probe_log
from lab.runfolder import EventKind, Reason
from lab.stacks.shell import quote

SOURCE = "/root/beast-source.bin"
PROBE_LOG = "/root/beast-probe.log"
COPY_RC = "/root/beast-copy.rc"
COPY_TIMEOUT_S = 900
COPY_STALL_S = 240
"""No growth of the copy for this long means stuck, not slow: a takeover stalls I/O for about 35 s here."""
FAULT_WINDOW_S = 60.0
"""The fault's window: the client's pause must begin within it, and its I/Os' latency is ranked over it."""


def copy_path(drill: Drill) -> str:
    return f"{drill.session.topo.client.mountpoint}/beast-copy.bin"


def md5(drill: Drill, path: str, label: str) -> str:
    return drill.must(drill.session.topo.client.host, drill.session.stack.md5_command(path), 300, label).strip()


@dataclass(frozen=True)
class ReadBack:
    """The copy read back from disk after a remount: its md5, or None with ``detail`` saying why not."""

    md5: str | None
    how: str
    detail: str = ""


def remounted_md5(drill: Drill, label: str) -> ReadBack:
    """The copy's md5 read back after a remount (so reads come from the disks, not the page cache)."""
    topo, stack = drill.session.topo, drill.session.stack
    client = topo.client.host
    for command in stack.remount_commands(topo):
        result = drill.session.run(client, command, 180, f"remount-{label}")
        if result.exit_code != 0:
            kernel = drill.session.run(client, "dmesg | tail -n 40", 30, f"dmesg-{label}").stdout
            drill.record.save(f"dmesg/{client}-{label}.txt", kernel)
            reason = (result.stderr or result.stdout).strip().splitlines()[:1] or ["no output"]
            last = kernel.strip().splitlines()[-1:] or [""]
            return ReadBack(None, f"`{command}` exited {result.exit_code}: {reason[0]}; kernel: {last[0].strip()}",
                            reason[0].strip())
    result = drill.session.run(client, stack.md5_command(copy_path(drill)), 300, f"md5-{label}")
    if result.exit_code != 0:
        return ReadBack(None, f"reading the copy failed: {result.stderr.strip()[:200]}", "reading the copy failed")
    return ReadBack(result.stdout.strip(), "read back after a remount")


def start(drill: Drill) -> None:
    """A file of random data with a known md5, copied to the client's filesystem in the background, with
    the client's I/O probe running beside it."""
    topo, stack = drill.session.topo, drill.session.stack
    client = topo.client.host
    drill.on_progress(f"making a {topo.drill.copy_size_mb} MiB source file")
    drill.must(client, stack.make_random_file_command(SOURCE, topo.drill.copy_size_mb), 300, "make-source")
    drill.facts["source_md5"] = md5(drill, SOURCE, "md5-source")
    drill.must(client, f"rm -f {COPY_RC} {quote(copy_path(drill))}", 30)
    clock.read_clocks(drill, topo.hosts, "workload-start")
    drill.facts["workload"] = stack.client_workload
    if stack.client_workload == "fio":
        drill.on_progress("starting fio's write pass beside the copy")
        fio_job.start(drill)
    else:
        drill.facts["probe_pid"] = start_probe(drill, PROBE_LOG)
        time.sleep(max(2.0, 4 * topo.drill.probe_interval_s))
    copy = f"cp {SOURCE} {quote(copy_path(drill))}; echo $? > {COPY_RC}"
    drill.must(client, f"nohup sh -c {quote(copy)} >/dev/null 2>&1 &", 30, "copy-start")
    drill.event(EventKind.COPY_STARTED, size_mb=topo.drill.copy_size_mb)
    drill.facts["copy_started"] = time.time()


def into_the_copy(drill: Drill) -> bool:
    """Wait the topology's ``drill.kill_after_s`` into the copy; whether it still runs (recorded as a fact)."""
    drill.on_progress(f"copying; the fault comes {drill.session.topo.drill.kill_after_s} s into the copy")
    time.sleep(drill.session.topo.drill.kill_after_s)
    drill.facts["copy_running_at_fault"] = running = is_running(drill)
    return running


def is_running(drill: Drill) -> bool:
    client = drill.session.topo.client.host
    return drill.session.run(client, f"test ! -e {COPY_RC}", 30, "copy-running").exit_code == 0


class CopyStalled(StepError):
    """The copy's file stopped growing: the client lost its volume, waiting longer shows nothing new."""


@dataclass
class StallWatch:
    """Tells a copy that is slow from one that is stuck: how long its size has not grown."""

    limit_s: float
    size: int | None = None
    since: float | None = None

    def stalled_for(self, size: int | None, now: float) -> float | None:
        """Seconds without growth once they pass ``limit_s``, else None."""
        if self.since is None or (size is not None and (self.size is None or size > self.size)):
            self.size, self.since = size, now
            return None
        waited = now - self.since
        return waited if waited >= self.limit_s else None


def wait(drill: Drill) -> str:
    """The copy's exit code, once it has finished; CopyStalled when its file stops growing for
    COPY_STALL_S (its full COPY_TIMEOUT_S would only wait on a client that lost its volume)."""
    client = drill.session.topo.client.host
    query = f"cat {COPY_RC} 2>/dev/null || ls -ln {quote(copy_path(drill))} | awk '{{print \"size\", $5}}'"
    watch = StallWatch(COPY_STALL_S)
    total = drill.session.topo.drill.copy_size_mb * 1024 * 1024

    def copy_rc() -> str | None:
        result = drill.session.run(client, query, 30, "copy-wait")
        words = result.stdout.split()
        if result.exit_code == 0 and words and words[0] != "size":
            return words[0]
        size = int(words[1]) if len(words) == 2 and words[1].isdigit() else None
        if size is not None:
            drill.on_progress(f"copy: {size // 1048576} of {total // 1048576} MiB written")
        stalled = watch.stalled_for(size, time.monotonic())
        if stalled is not None:
            drill.facts["copy_stalled_at_bytes"] = watch.size
            raise CopyStalled(f"the copy made no progress for {stalled:.0f} s "
                              f"(its file stayed at {watch.size} bytes): the client lost its volume")
        return None

    try:
        rc = drill.wait_for("the copy to finish", copy_rc, COPY_TIMEOUT_S, interval=3)
    finally:
        drill.facts["copy_seconds"] = round(time.time() - drill.facts["copy_started"], 1)
    drill.facts["copy_exit_code"] = int(rc)
    return rc


def start_probe(drill: Drill, log: str) -> str:
    """The client's probe started afresh, appending to ``log``; its pid."""
    topo = drill.session.topo
    probe = drill.session.stack.probe_command(topo, log, topo.drill.probe_interval_s)
    return drill.must(topo.client.host, f"rm -f {quote(log)}; nohup sh -c {quote(probe)} >/dev/null 2>&1 & echo $!",
                      30, "probe-start").strip()


def stop_probe(drill: Drill, pid: str | None, log: str, saved_as: str) -> list[ProbeSample]:
    """Stop the probe ``pid``, keep its log in the run folder as ``saved_as``, and return its samples."""
    client = drill.session.topo.client.host
    if pid:
        drill.session.run(client, f"kill {quote(pid)}; sleep 1", 30, "probe-stop")
    text = drill.must(client, f"cat {quote(log)}", 60, "probe-log")
    drill.record.save(saved_as, text)
    return parse_probe_log(text)


@contextmanager
def probing(drill: Drill, label: str) -> Iterator[None]:
    """The client's probe beside the block (its log kept as probe-<label>.log), and the longest stall it saw
    recorded as the fact ``<label>_stall_s``: what the client lived through while the block ran."""
    log = f"/root/beast-probe-{label}.log"
    pid = start_probe(drill, log)
    try:
        yield
    finally:
        stall = longest_stall(stop_probe(drill, pid, log, f"probe-{label}.log"))
        key = label.replace("-", "_")
        drill.facts[f"{key}_stall_s"] = stall.seconds if stall else None
        drill.facts[f"{key}_stall_ongoing"] = bool(stall and stall.ongoing)


def collect(drill: Drill) -> fio_job.WritePass | None:
    """Stop what ran beside the copy and record the client's stall: from fio's latency log when the client
    ran fio (the write pass returned, for the verify passes), else from the probe's log."""
    if drill.session.stack.client_workload != "fio":
        collect_probe(drill)
        return None
    client = drill.session.topo.client.host
    written = fio_job.stop(drill)
    clock.read_clock(drill, client, "fio-stopped")
    record_fio_stall(drill, written)
    return written


def record_fio_stall(drill: Drill, written: fio_job.WritePass) -> None:
    """The stall from the fault (host time) to the end of the client's longest pause within the fault
    window, every I/O placed on the host's time by the client's clock readings; the window's latency."""
    facts = drill.facts
    facts["fio_samples"] = len(written.samples)
    facts["client_host"] = drill.session.topo.client.host
    facts["failover_stall_source"] = "fio"
    if written.problem:
        facts["fio_problem"] = written.problem
    if written.run is not None:
        job = written.run.job(fio_job.JOB)
        facts["fio_write_pass"] = {"writes": job.write.ios, "reads_back": job.read.ios, "error": job.error,
                                   "bad_blocks_seen": max(len(written.run.verify_failures), job.total_err or 0)}
    base = clock.TimeBase.of(readings(drill), drill.session.topo.client.host)
    fault = facts.get("fault_at")
    if base is None or fault is None or not written.samples:
        facts["failover_stall_s"], facts["failover_stall_ongoing"] = None, False
        return
    guest_times = [s.completed for s in written.samples]
    on_host = [_shifted(s, base) for s in written.samples]
    facts["client_clock_offset_s"] = round(base.offset(guest_times[0]), 4)
    facts["time_base_error_s"] = round(base.error(guest_times[0], guest_times[-1]) + 0.001, 4)
    until = None if not written.problem else written.stopped_at
    stall = stall_from_fault(on_host, fault, until, FAULT_WINDOW_S)
    facts["failover_stall_s"] = stall.seconds
    facts["failover_stall_ongoing"] = stall.ongoing
    facts["stall_began_after_fault_s"] = round(stall.resumed_from - fault, 3)
    window = window_latency(on_host, fault, FAULT_WINDOW_S)
    facts["fault_window"] = {"start": round(window.start, 3), "end": round(window.end, 3),
                             "samples": window.samples, "p99_s": window.p99, "max_s": window.max}


def _shifted(sample: LatencySample, base: clock.TimeBase) -> LatencySample:
    return replace(sample, completed=base.to_host(sample.completed))


def readings(drill: Drill) -> list[clock.ClockReading]:
    path = drill.record.folder / clock.CLOCKS_NAME
    return clock.load_readings(path.read_text()) if path.exists() else []


def acknowledged_writes(drill: Drill, label: str, claim: str) -> Judged:
    """fio's verify-only pass ``label`` judged as ``claim`` (to record with ``Drill.claims``); where the
    client runs no fio, the claim does not hold and says nothing was verified."""
    stack = drill.session.stack
    if stack.client_workload != "fio":
        return Judged(claim, False, f"the {stack.name} stack's client runs no fio, so no acknowledged write was "
                      "verified", reason=Reason.NOT_MEASURED)
    drill.on_progress(f"fio: reading back every acknowledged write ({label})")
    verified = fio_job.verify(drill, label)
    if isinstance(verified, str):
        judgement, failed, read = Judgement(False, verified), None, 0
    else:
        judgement = acknowledged_writes_survive(verified, fio_job.JOB)
        job = verified.job(fio_job.JOB)
        failures = max(len(verified.verify_failures), job.total_err or 0)
        failed = failures if failures or judgement.holds else None
        read = job.read.ios
    drill.facts.setdefault("fio_verify", {})[label] = {"verified": read, "failed": failed, "holds": judgement.holds}
    counts = [v["failed"] for v in drill.facts["fio_verify"].values()]
    drill.facts["acknowledged_writes_lost"] = None if None in counts else max(counts)
    reason = Reason.DATA_DIFFERS if failed else Reason.DATA_UNREADABLE
    return Judged(claim, judgement.holds, judgement.evidence, reason=reason)


def collect_probe(drill: Drill) -> None:
    """Stop the copy's probe, keep its log as probe.log, and record the longest stall it saw."""
    samples = stop_probe(drill, drill.facts.pop("probe_pid", None), PROBE_LOG, "probe.log")
    stall = longest_stall(samples)
    drill.facts["probe_samples"] = len(samples)
    drill.facts["probe_failures"] = sum(not s.ok for s in samples)
    drill.facts["failover_stall_s"] = stall.seconds if stall else None
    drill.facts["failover_stall_ongoing"] = bool(stall and stall.ongoing)
    drill.facts["failover_stall_source"] = "probe"
