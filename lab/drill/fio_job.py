"""fio on the client, beside the paper's copy: a write pass that spans the fault, and verify-only passes.

The job writes a file in the client's filesystem rather than a region of the striped device: the striped
device is the filesystem's, and the file lets fio run beside the paper's copy and its md5 checks, through
the same stripe, multipaths and controllers. ``direct=1`` keeps the client's page cache out of both
passes, so a verify-only pass reads what the controllers hold. Options and what each pass proves:
lab.parsers.fio (checked against Debian 12's fio 3.33).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lab.drill.context import Drill, StepError
from lab.errors import ParseError
from lab.parsers.fio import Direction, FioRun, LatencySample, parse_fio_json, parse_latency_log
from lab.stacks.shell import quote

JOB = "beast"
WORKDIR = "/root/beast-fio"
SIZE_MB = 32
BLOCK = 4096
RUNTIME_S = 3600
"""Longer than any drill: the write pass ends when the drill stops it (SIGINT), never on its own."""
STOP_TIMEOUT_S = 60
LATENCY_LOG = f"{JOB}_lat.1.log"
STATE_FILE = f"local-{JOB}-0-verify.state"


def data_file(drill: Drill) -> str:
    return f"{drill.session.topo.client.mountpoint}/beast-fio.bin"


def _workload_options(path: str) -> list[str]:
    return [f"--name={JOB}", f"--filename={path}", f"--size={SIZE_MB}M", "--rw=randwrite", f"--bs={BLOCK}",
            "--direct=1", "--ioengine=psync", "--iodepth=1", "--verify=crc32c"]


def write_command(path: str) -> str:
    """The write pass: per-I/O latency log on the epoch clock, read-back every 16 writes, state saved. A
    read-back that fails is counted and the pass goes on (a lost write seen live must not end the workload
    before the fault's stall is measured).

    Prints fio's own pid, the one to signal: the shell around it (which waits to write ``write.rc``)
    ignores SIGINT as every background job of a non-interactive shell does, while fio sets its own handler."""
    options = [*_workload_options(path), "--time_based", f"--runtime={RUNTIME_S}", "--verify_backlog=16",
               "--continue_on_error=verify", "--verify_state_save=1", f"--write_lat_log={JOB}", "--log_avg_msec=0",
               "--log_unix_epoch=1", "--log_offset=1", "--output-format=json"]
    fio = " ".join(["fio", *(quote(o) for o in options)])
    wrapper = f"{fio} > write.json 2> write.stderr & echo $! > fio.pid; wait $!; echo $? > write.rc"
    return (f"mkdir -p {WORKDIR} && cd {WORKDIR} && rm -f {LATENCY_LOG} {STATE_FILE} write.* fio.pid && "
            f"(nohup sh -c {quote(wrapper)} >/dev/null 2>&1 &) && "
            f"for i in $(seq 50); do test -s fio.pid && break; sleep 0.1; done && cat fio.pid")


def verify_command(path: str, label: str) -> str:
    """A verify-only pass over what the write pass saw acknowledged; every bad block named
    (continue_on_error=verify), its JSON and stderr kept as ``verify-<label>.*``. It must not save a state
    of its own (``verify_state_save`` is on by default): a finished verify-only pass saves one that covers
    the whole file, and the next pass would then check blocks the write pass never wrote (found by the
    drill: every one of them "bad magic header 0")."""
    options = [*_workload_options(path), "--verify_only", "--verify_state_load=1", "--verify_state_save=0",
               "--continue_on_error=verify", "--allow_file_create=0", "--output-format=json"]
    fio = " ".join(["fio", *(quote(o) for o in options)])
    return f"cd {WORKDIR} && {fio} > verify-{label}.json 2> verify-{label}.stderr; echo $?"


def readable_command(drill: Drill) -> str:
    """Succeeds when fio's file is there to read: the client's filesystem mounted and the file in it (fio
    would otherwise lay out a new file of zeros under the mountpoint and verify that)."""
    mountpoint = drill.session.topo.client.mountpoint
    return f"mountpoint -q {quote(mountpoint)} && test -f {quote(data_file(drill))}"


def start(drill: Drill) -> None:
    """The write pass started; returns once fio has laid out its file and begun writing."""
    client = drill.session.topo.client.host
    path = data_file(drill)
    drill.must(client, f"rm -f {quote(path)}", 30, "fio-clean")
    drill.facts["fio_pid"] = drill.must(client, write_command(path), 30, "fio-start").strip()
    wanted = SIZE_MB * 1024 * 1024

    def laid_out() -> bool:
        result = drill.session.run(client, f"stat -c %s {quote(path)} 2>/dev/null", 30, "fio-layout")
        return result.exit_code == 0 and result.stdout.strip() == str(wanted)

    drill.wait_for("fio to lay out its file", laid_out, 300, interval=1)
    time.sleep(2)


@dataclass(frozen=True)
class WritePass:
    """What the write pass left: its report (None when fio never finished) and every I/O it logged."""

    run: FioRun | None
    samples: list[LatencySample]
    stopped_at: float
    problem: str = ""


def stop(drill: Drill) -> WritePass:
    """Stop the write pass (SIGINT: fio ends its job and writes its report, log and state), keep its
    outputs under ``fio/`` in the run folder, and read them."""
    client = drill.session.topo.client.host
    pid = drill.facts.pop("fio_pid", None)
    stopped_at = time.time()
    problem = ""
    if pid:
        drill.session.run(client, f"kill -INT {quote(pid)}", 30, "fio-stop")
        try:
            drill.wait_for("fio's write pass to end", lambda: drill.session.run(
                client, f"test -e {WORKDIR}/write.rc", 30, "fio-ended").exit_code == 0, STOP_TIMEOUT_S, interval=1)
        except StepError:
            problem = f"fio's write pass did not end within {STOP_TIMEOUT_S} s of SIGINT (its I/O hangs)"
    texts = {}
    for name in ("write.json", "write.stderr", "write.rc", LATENCY_LOG):
        result = drill.session.run(client, f"cat {WORKDIR}/{name}", 60, f"fio-{name}")
        texts[name] = result.stdout if result.exit_code == 0 else None
        if texts[name] is not None:
            drill.record.save(f"fio/{name}", texts[name])
    run = None
    if texts["write.json"]:
        try:
            run = parse_fio_json(texts["write.json"], texts["write.stderr"] or "")
        except ParseError as error:
            problem = problem or f"fio's write report could not be read: {error}"
    samples: list[LatencySample] = []
    if texts[LATENCY_LOG]:
        try:
            samples = parse_latency_log(texts[LATENCY_LOG])
        except ParseError as error:
            problem = problem or f"fio's latency log could not be read: {error}"
    elif not problem:
        problem = "fio left no latency log"
    return WritePass(run, samples, stopped_at, problem)


def verify(drill: Drill, label: str) -> FioRun | str:
    """A verify-only pass; its parsed report, or why there is none. Its outputs go to ``fio/``."""
    client = drill.session.topo.client.host
    if drill.session.run(client, readable_command(drill), 30, f"fio-readable-{label}").exit_code != 0:
        return (f"fio's file {data_file(drill)} cannot be read: the client's filesystem is not mounted or the "
                "file is gone")
    result = drill.session.run(client, verify_command(data_file(drill), label), 900, f"fio-verify-{label}")
    texts = {}
    for suffix in ("json", "stderr"):
        read = drill.session.run(client, f"cat {WORKDIR}/verify-{label}.{suffix}", 60, f"fio-verify-{label}")
        texts[suffix] = read.stdout if read.exit_code == 0 else ""
        drill.record.save(f"fio/verify-{label}.{suffix}", texts[suffix])
    if result.exit_code is None:
        return f"the verify-only pass did not run: {result.last_line()[:200]}"
    try:
        return parse_fio_json(texts["json"], texts["stderr"])
    except ParseError as error:
        return f"the verify-only pass left no report fio could be judged by ({error}); exit {result.stdout.strip()}"


def corrupt_command(drill: Drill, samples: list[LatencySample]) -> str | None:
    """Overwrite, behind fio's back, the first block the write pass logged writing (``--inject
    corrupt-fio-block``); None when it logged no write with an offset."""
    offset = next((s.offset for s in samples if s.direction is Direction.WRITE and s.offset is not None), None)
    if offset is None:
        return None
    return (f"dd if=/dev/urandom of={quote(data_file(drill))} bs={BLOCK} count=1 seek={offset // BLOCK} "
            "conv=notrunc oflag=direct 2>&1")
