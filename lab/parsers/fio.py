"""fio 3.33's JSON report, its verify-failure lines and its per-I/O latency log, as typed results.

The lab's client runs two fio passes on the multipath device (options checked with Debian 12's fio 3.33):

* the write pass, while the fault strikes::

    fio --name=beast --filename=DEV --size=64M --rw=randwrite --bs=4k --direct=1 --ioengine=psync
        --iodepth=1 --time_based --runtime=N --verify=crc32c --verify_backlog=16 --verify_state_save=1
        --write_lat_log=beast --log_avg_msec=0 --log_unix_epoch=1 [--lat_percentiles=1] --output-format=json

  ``verify_backlog`` makes fio read back and check every 16 writes while it runs (those reads are the
  ``read`` direction of this pass). ``verify_state_save`` writes ``local-beast-0-verify.state`` (the
  ``local-`` prefix is fio's, for a local run) in the working directory or ``--aux-path``.
  ``lat_percentiles=1`` adds percentiles to ``lat_ns``; without it only ``clat_ns`` has them.

* the verify-only pass, after the failover, with the same workload options but without ``time_based``,
  ``runtime`` and ``verify_backlog``::

    fio --name=beast --filename=DEV --size=64M --rw=randwrite --bs=4k --direct=1 --ioengine=psync
        --iodepth=1 --verify=crc32c --verify_fatal=1 --verify_only --verify_state_load=1 --output-format=json

  fio's HOWTO says ``verify_only`` does not support ``time_based``. ``verify_backlog`` must be left out:
  with it, fio 3.33 spends the backlog's verify reads inside the dry run of the write phase, where no
  I/O is real, and reports a clean pass over a file with corrupted blocks (the fixture
  ``verify_only_corrupt_with_backlog_passes.json``). ``--continue_on_error=verify`` instead of
  ``verify_fatal`` checks every block and names each bad one (exit status 0, ``total_err`` in the JSON).

What the verify-only pass proves (fio 3.33's verify.c): fio replays the write pass's offsets without
writing, then reads each block once and checks its header (magic, length, the block's own offset, header
CRC) and the crc32c of its data. With the state loaded it stops at the writes that were still in flight
when the write pass ended, so only acknowledged writes are checked. It does not check that a block holds
the *latest* write: ``numberio`` is not compared under ``verify_only`` nor ``time_based``, and the seed is
taken from the block's own header, so an older fio-written version of a block passes. A block that is
torn, zeroed, never written, or holds another offset's data fails.

fio reports a failure on stderr (``crc32c: verify failed at file F offset O, length L (requested block:
...)`` or ``verify: bad magic header c139, wanted acca at file F offset O, ...``), prints ``fio: pid=N,
err=84/...`` on stdout before the JSON document, and sets the job's ``error`` to 84 (EILSEQ).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

from lab.errors import ParseError
from lab.parsers._text import require_text

EILSEQ = 84
"""The error fio gives a job whose read-back did not verify."""

EARLIEST_EPOCH_MS = 946684800000
"""2000-01-01 in milliseconds: an earlier log time is fio's zero-based clock (``log_unix_epoch`` unset)."""


@dataclass(frozen=True)
class LatencyStats:
    """One of fio's ``clat_ns``/``lat_ns`` blocks; ``percentiles`` pairs (percent, nanoseconds), when fio
    computed them."""

    min_ns: int
    max_ns: int
    mean_ns: float
    samples: int
    percentiles: tuple[tuple[float, int], ...]

    def percentile(self, percent: float) -> int | None:
        return dict(self.percentiles).get(percent)


@dataclass(frozen=True)
class DirectionStats:
    ios: int
    bytes: int
    clat: LatencyStats
    lat: LatencyStats


@dataclass(frozen=True)
class FioJob:
    """A job's outcome; ``total_err`` is only reported under ``continue_on_error``."""

    name: str
    error: int
    read: DirectionStats
    write: DirectionStats
    options: tuple[tuple[str, str], ...]
    total_err: int | None = None

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


@dataclass(frozen=True)
class VerifyFailure:
    """A block fio read back that did not verify, from its stderr line."""

    offset: int
    length: int
    problem: str
    file: str


@dataclass(frozen=True)
class FioRun:
    """A fio run's JSON report plus the lines it printed around it (the evidence of a failure)."""

    version: str
    timestamp_ms: int
    jobs: tuple[FioJob, ...]
    evidence: tuple[str, ...]
    verify_failures: tuple[VerifyFailure, ...]

    def job(self, name: str) -> FioJob:
        for job in self.jobs:
            if job.name == name:
                return job
        raise ParseError(f"fio: no job named {name!r} in the report (jobs: {', '.join(j.name for j in self.jobs)})")


class Direction(Enum):
    READ = 0
    WRITE = 1
    TRIM = 2


@dataclass(frozen=True)
class LatencySample:
    """One I/O from fio's latency log: when fio accounted its completion (epoch seconds, millisecond
    resolution), its latency in seconds, and ``offset`` when the log was written with ``log_offset=1``."""

    completed: float
    latency: float
    direction: Direction
    block_size: int
    offset: int | None = None


_CHECKSUM_FAILURE = re.compile(
    r"^(?P<problem>\w+): verify failed at file (?P<file>.+) offset (?P<offset>\d+), length (?P<length>\d+)"
    r" \(requested block:")
_HEADER_FAILURE = re.compile(
    r"^verify: (?P<problem>bad .+?) at file (?P<file>.+) offset (?P<offset>\d+), length (?P<length>\d+)"
    r" \(requested block:")


def parse_verify_failures(lines: list[str] | tuple[str, ...]) -> tuple[VerifyFailure, ...]:
    """The blocks named by fio's verify-failure lines, in the order fio printed them."""
    failures = []
    for line in lines:
        match = _CHECKSUM_FAILURE.match(line) or _HEADER_FAILURE.match(line)
        if match is None:
            continue
        problem = match["problem"]
        if match.re is _CHECKSUM_FAILURE:
            problem = f"{problem} mismatch"
        failures.append(VerifyFailure(int(match["offset"]), int(match["length"]), problem, match["file"]))
    return tuple(failures)


def _find_report(stdout: str) -> tuple[dict, list[str]]:
    """The JSON document in fio's stdout and the other lines around it."""
    lines = stdout.splitlines(keepends=True)
    decoder = json.JSONDecoder()
    first_error = None
    for index, line in enumerate(lines):
        if not line.startswith("{"):
            continue
        text = "".join(lines[index:])
        try:
            report, end = decoder.raw_decode(text)
        except json.JSONDecodeError as err:
            first_error = first_error or f"line {index + err.lineno}: {err.msg}"
            continue
        if isinstance(report, dict) and "jobs" in report:
            rest = "".join(lines[:index]) + text[end:]
            return report, [line for line in rest.splitlines() if line.strip()]
    if first_error:
        raise ParseError(f"fio: the JSON report is cut off or malformed ({first_error})")
    raise ParseError("fio: no JSON report in the output; was it run with --output-format=json?")


def _number(block: dict, key: str, where: str, kinds: tuple[type, ...] = (int,)):
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ParseError(f"fio: {where} has no number {key!r} (got {value!r:.60})")
    return value


def _latency(block: dict, where: str) -> LatencyStats:
    if not isinstance(block, dict):
        raise ParseError(f"fio: {where} is missing")
    raw = block.get("percentile", {})
    try:
        percentiles = tuple(sorted((float(p), int(v)) for p, v in raw.items()))
    except (AttributeError, TypeError, ValueError):
        raise ParseError(f"fio: {where} has percentiles that are not numbers: {raw!r:.120}") from None
    return LatencyStats(_number(block, "min", where), _number(block, "max", where),
                        float(_number(block, "mean", where, (int, float))), _number(block, "N", where), percentiles)


def _direction(job: dict, name: str, where: str) -> DirectionStats:
    block = job.get(name)
    where = f"{where} {name}"
    if not isinstance(block, dict):
        raise ParseError(f"fio: {where} is missing")
    return DirectionStats(_number(block, "total_ios", where), _number(block, "io_bytes", where),
                          _latency(block.get("clat_ns"), f"{where} clat_ns"),
                          _latency(block.get("lat_ns"), f"{where} lat_ns"))


def _job(job: dict, number: int) -> FioJob:
    if not isinstance(job, dict) or not isinstance(job.get("jobname"), str):
        raise ParseError(f"fio: job {number} in the report has no jobname")
    where = f"job {job['jobname']!r}"
    options = job.get("job options", {})
    if not isinstance(options, dict):
        raise ParseError(f"fio: {where} has 'job options' that are not a mapping")
    total_err = job.get("total_err")
    return FioJob(job["jobname"], _number(job, "error", where), _direction(job, "read", where),
                  _direction(job, "write", where), tuple((str(k), str(v)) for k, v in options.items()),
                  total_err if isinstance(total_err, int) else None)


def parse_fio_json(stdout: str, stderr: str = "") -> FioRun:
    """fio's ``--output-format=json`` stdout; lines around the document and all of stderr are kept as
    evidence, and the verify failures they name are parsed."""
    require_text(stdout, tool="fio")
    report, around = _find_report(stdout)
    jobs = report.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise ParseError("fio: the JSON report has no jobs")
    version = report.get("fio version")
    if not isinstance(version, str):
        raise ParseError("fio: the JSON report has no 'fio version'; is this fio's output?")
    evidence = tuple(around + [line for line in (stderr or "").splitlines() if line.strip()])
    return FioRun(version, _number(report, "timestamp_ms", "the report"),
                  tuple(_job(job, n) for n, job in enumerate(jobs, 1)), evidence, parse_verify_failures(evidence))


def parse_latency_log(text: str) -> list[LatencySample]:
    """fio's ``write_lat_log`` file written with ``log_avg_msec=0`` (a line per I/O) and ``log_unix_epoch=1``.

    fio 3.33 writes ``time_ms, latency_ns, direction, block_size, priority`` and, with ``log_offset=1``,
    ``time_ms, latency_ns, direction, block_size, offset, priority`` (priority is ``0x%04x`` under
    ``log_prio``). Both are accepted; the samples come back in completion order.
    """
    require_text(text, tool="fio latency log")
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"fio latency log line {number}"
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (5, 6) or not all(f.isdigit() for f in fields[:-1]):
            raise ParseError(f"{where}: expected 'time_ms, latency_ns, direction, block_size[, offset], "
                             f"priority', got {line[:120]!r}")
        time_ms, latency_ns, direction, block_size = (int(f) for f in fields[:4])
        if time_ms < EARLIEST_EPOCH_MS:
            raise ParseError(f"{where}: time {time_ms} ms is not a Unix epoch time; was it run with "
                             f"log_unix_epoch=1?")
        if direction not in (0, 1, 2):
            raise ParseError(f"{where}: direction {direction} is not 0 (read), 1 (write) or 2 (trim)")
        if block_size == 0:
            raise ParseError(f"{where}: block size 0 means averaged windows; run it with log_avg_msec=0")
        offset = int(fields[4]) if len(fields) == 6 else None
        samples.append(LatencySample(time_ms / 1000, latency_ns / 1e9, Direction(direction), block_size, offset))
    return sorted(samples, key=lambda s: s.completed)
