import pytest

from lab.errors import ParseError
from lab.parsers.probe import longest_stall, parse_probe_log

LOG = """\
100.0 100.1 ok
100.6 100.7 ok
101.2 115.9 ok
116.4 116.5 fail
117.0 117.1 ok
"""


def test_longest_stall_is_the_widest_gap_between_successes():
    stall = longest_stall(parse_probe_log(LOG))
    assert stall.seconds == pytest.approx(15.2)
    assert (stall.after, stall.before) == (100.7, 115.9)


def test_failed_probes_do_not_end_a_stall():
    stall = longest_stall(parse_probe_log("1 1.1 ok\n2 2.1 fail\n3 3.1 fail\n9 9.5 ok\n"))
    assert stall.seconds == pytest.approx(8.4)


def test_too_few_samples_give_no_stall():
    assert longest_stall(parse_probe_log("1 2 ok\n")) is None
    assert longest_stall(parse_probe_log("1 2 fail\n3 4 fail\n")) is None


def test_failures_to_the_end_are_a_stall_that_never_ended():
    stall = longest_stall(parse_probe_log("1 1.1 ok\n2 2.1 ok\n3 3.1 fail\n60 60.5 fail\n"))
    assert stall.seconds == pytest.approx(58.4) and stall.ongoing
    assert (stall.after, stall.before) == (2.1, 60.5)


def test_a_short_trailing_failure_does_not_hide_a_longer_stall_that_ended():
    stall = longest_stall(parse_probe_log("1 1.1 ok\n30 30.1 ok\n31 31.5 fail\n"))
    assert stall.seconds == pytest.approx(29.0) and not stall.ongoing


@pytest.mark.parametrize("line", ["1 2", "1 2 maybe", "a b ok"])
def test_garbage_is_refused_with_the_line_number(line):
    with pytest.raises(ParseError, match="probe log line 2"):
        parse_probe_log(f"1 2 ok\n{line}\n")
