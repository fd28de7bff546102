"""fio 3.33's JSON report, verify-failure lines and latency log, on real runs (see fixtures SOURCES.md)."""

from pathlib import Path

import pytest

from lab.errors import ParseError
from lab.parsers.fio import Direction, parse_fio_json, parse_latency_log, parse_verify_failures

FIO = Path(__file__).parent / "fixtures" / "parsers" / "fio"


def run(name: str):
    stderr = FIO / f"{name}.stderr"
    return parse_fio_json((FIO / f"{name}.json").read_text(), stderr.read_text() if stderr.exists() else "")


def test_write_pass_counts_latencies_and_options():
    result = run("write_pass")
    assert result.version == "fio-3.33" and result.timestamp_ms == 1796680046393
    job = result.job("beast")
    assert (job.error, job.total_err) == (0, None)
    assert (job.write.ios, job.write.bytes) == (24246, 24246 * 4096)
    assert job.read.ios == 24240
    assert job.write.clat.percentile(99.0) == 1581056 and job.write.clat.percentile(99.99) is not None
    assert job.write.lat.percentiles == () and job.write.lat.max_ns == 7305822
    assert job.option("verify_backlog") == "16" and job.option("time_based") is None
    assert result.evidence == () and result.verify_failures == ()


def test_lat_percentiles_fill_lat_ns():
    job = run("write_pass_sigstop").job("beast")
    assert job.write.lat.percentile(99.0) == 3227648 and job.write.lat.samples == job.write.ios == 500


def test_verify_only_good_pass_reads_every_block():
    result = run("verify_only_good")
    job = result.job("beast")
    assert (job.error, job.read.ios, job.read.bytes) == (0, 16384, 64 * 1024 * 1024)
    assert result.evidence == ()


def test_corrupt_block_with_verify_fatal_keeps_the_lines_around_the_json():
    result = run("verify_only_corrupt_fatal")
    job = result.job("beast")
    assert job.error == 84 and job.read.ios == 9667
    assert result.evidence[0].startswith("fio: pid=25542, err=84/file:io_u.c:2152")
    assert "       Expected CRC: caaadc3d" in result.evidence
    [failure] = result.verify_failures
    assert (failure.offset, failure.length, failure.problem) == (33554432, 4096, "crc32c mismatch")
    assert failure.file == "/tmp/fiorun/cap/data"


def test_continue_on_error_names_every_bad_block():
    result = run("verify_only_corrupt_continue")
    job = result.job("beast")
    assert (job.error, job.total_err, job.read.ios) == (84, 2, 16384)
    assert [(f.offset, f.problem) for f in result.verify_failures] == [
        (33554432, "crc32c mismatch"), (50331648, "bad magic header c139, wanted acca")]


def test_normal_output_failure_lines_are_the_same_as_with_json():
    lines = (FIO / "verify_only_corrupt_fatal_normal.stderr").read_text().splitlines()
    assert [f.offset for f in parse_verify_failures(lines)] == [33554432]


def test_unknown_job_is_named():
    with pytest.raises(ParseError, match="no job named 'other'.*jobs: beast"):
        run("write_pass").job("other")


@pytest.mark.parametrize(("text", "message"), [
    ("", "output is empty"),
    ("fio: pid=1, err=84/file:io_u.c:2152\n", "no JSON report"),
    ("fio: pid=1\n{\n  \"fio version\" : \"fio-3.33\",\n  \"jobs\" : [\n", "cut off or malformed"),
    ('{"fio version": "fio-3.33", "timestamp_ms": 1, "jobs": []}', "has no jobs"),
    ('{"fio version": "fio-3.33", "timestamp_ms": 1, "jobs": [{"jobname": "beast", "error": 0}]}',
     "job 'beast' read is missing"),
])
def test_malformed_reports_give_one_line(text, message):
    with pytest.raises(ParseError, match=message) as err:
        parse_fio_json(text)
    assert "\n" not in str(err.value)


def test_truncated_fixture_is_refused():
    text = (FIO / "write_pass.json").read_text()
    with pytest.raises(ParseError, match="cut off"):
        parse_fio_json(text[: len(text) // 2])


def test_missing_number_names_the_block():
    text = (FIO / "write_pass.json").read_text().replace('"total_ios" : 24246', '"total_ios" : "many"')
    with pytest.raises(ParseError, match="job 'beast' write has no number 'total_ios'"):
        parse_fio_json(text)


def test_latency_log_without_offset():
    samples = parse_latency_log((FIO / "write_pass_sigstop_lat.1.log").read_text())
    assert len(samples) == 996
    first = samples[0]
    assert first.completed == pytest.approx(1796680092.443)
    assert first.latency == pytest.approx(244869e-9)
    assert (first.direction, first.block_size, first.offset) == (Direction.WRITE, 4096, None)
    assert {s.direction for s in samples} == {Direction.READ, Direction.WRITE}
    assert [s.completed for s in samples] == sorted(s.completed for s in samples)


def test_latency_log_with_offset():
    samples = parse_latency_log((FIO / "write_pass_log_offset_lat.1.log").read_text())
    assert len(samples) == 36 and samples[0].offset == 4046848
    assert all(s.offset is not None and s.offset % 4096 == 0 for s in samples)


def test_latency_log_accepts_hex_priority():
    [sample] = parse_latency_log("1796680105650, 229951, 1, 4096, 0x0000\n")
    assert sample.latency == pytest.approx(229951e-9)


@pytest.mark.parametrize(("text", "message"), [
    ("", "output is empty"),
    ("1796680105650, 229951, 1, 4096, 0\nverify: bad magic header\n", "line 2: expected"),
    ("1796680105650, 229951, 1\n", "line 1: expected"),
    ("1796680105650, -5, 1, 4096, 0\n", "line 1: expected"),
    ("1650, 229951, 1, 4096, 0\n", "log_unix_epoch=1"),
    ("1796680105650, 229951, 7, 4096, 0\n", "direction 7"),
    ("1796680105650, 229951, 1, 0, 0\n", "log_avg_msec=0"),
])
def test_malformed_latency_logs_give_one_line(text, message):
    with pytest.raises(ParseError, match=message) as err:
        parse_latency_log(text)
    assert "\n" not in str(err.value)
