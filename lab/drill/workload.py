"""The drill's workload: a file copied to the client's filesystem while a probe writes and reads beside it.

The workload only does I/O on the client and records what it saw (facts, probe.log); judging it is the
steps' and checks' business, striking the lab the nemesis's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lab.drill.context import Drill, StepError
from lab.drill.probe import ProbeSample, longest_stall, parse_probe_log
from lab.runfolder import EventKind
from lab.stacks.shell import quote

SOURCE = "/root/beast-source.bin"
PROBE_LOG = "/root/beast-probe.log"
COPY_RC = "/root/beast-copy.rc"
COPY_TIMEOUT_S = 900
COPY_STALL_S = 240
"""No growth of the copy for this long means stuck, not slow: a takeover stalls I/O for about 35 s here."""


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


def collect_probe(drill: Drill) -> None:
    """Stop the copy's probe, keep its log as probe.log, and record the longest stall it saw."""
    samples = stop_probe(drill, drill.facts.pop("probe_pid", None), PROBE_LOG, "probe.log")
    stall = longest_stall(samples)
    drill.facts["probe_samples"] = len(samples)
    drill.facts["probe_failures"] = sum(not s.ok for s in samples)
    drill.facts["failover_stall_s"] = stall.seconds if stall else None
    drill.facts["failover_stall_ongoing"] = bool(stall and stall.ongoing)
