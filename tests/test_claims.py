import json
from pathlib import Path

import pytest

from lab.drill.claims import (
    ARBITRATORS,
    CLAIMS,
    FAULT_CLAIMS,
    PAPER_CLAIMS,
    ClaimResult,
    Expectation,
    claims_table,
    load_expectations,
)
from lab.errors import LabError
from lab.record import CommandRecord, RunRecord

EXPECTATIONS = Path(__file__).resolve().parents[1] / "scenarios" / "expectations.toml"


@pytest.mark.parametrize("fault", FAULT_CLAIMS)
@pytest.mark.parametrize(("stack", "arbitrator"), [("linux", "paper"), ("linux", "takeover"), ("freebsd", "paper")])
def test_the_shipped_expectations_cover_every_fault_in_every_mode(stack, arbitrator, fault):
    expectations = load_expectations(EXPECTATIONS, stack, arbitrator, fault)
    assert list(expectations) == list(FAULT_CLAIMS[fault])


def test_every_claim_is_checked_by_some_fault_and_described():
    assert {c for claims in FAULT_CLAIMS.values() for c in claims} == set(CLAIMS)
    assert set(PAPER_CLAIMS) <= set(CLAIMS) and set(ARBITRATORS) == {"paper", "takeover"}


def test_the_paper_saw_errors_on_the_failed_pool_so_freebsd_expects_them():
    assert load_expectations(EXPECTATIONS, "freebsd")["failed_pool_clean"] is Expectation.FAIL


def test_the_takeover_arbitrator_is_expected_to_keep_the_data_the_paper_may_lose():
    takeover = load_expectations(EXPECTATIONS, "linux", "takeover")
    paper = load_expectations(EXPECTATIONS, "linux", "paper")
    assert takeover["md5_from_disk"] is Expectation.HOLD and paper["md5_from_disk"] is Expectation.MAYBE


@pytest.mark.parametrize(("expectation", "held", "accepted"), [
    (Expectation.HOLD, True, True), (Expectation.HOLD, False, False),
    (Expectation.FAIL, False, True), (Expectation.FAIL, True, False),
    (Expectation.MAYBE, True, True), (Expectation.MAYBE, False, True),
])
def test_expectations_accept_only_what_they_say(expectation, held, accepted):
    assert ClaimResult("md5_from_disk", held, "e", expectation).expected is accepted


def test_a_missing_or_unknown_claim_is_one_clear_line(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text("[linux.paper.kill-ctrl-a]\nprovisioned = 'hold'\n")
    with pytest.raises(LabError, match=r"\[linux.paper.kill-ctrl-a\]\.copy_completes is None; use hold, fail or maybe"):
        load_expectations(path, "linux")
    path.write_text("\n".join(["[linux.paper.kill-ctrl-a]", *(f"{c} = 'hold'" for c in PAPER_CLAIMS),
                               "fast = 'hold'"]))
    with pytest.raises(LabError, match=r"\[linux.paper.kill-ctrl-a\]\.fast is not a claim of kill-ctrl-a"):
        load_expectations(path, "linux")
    with pytest.raises(LabError, match=r"has no \[freebsd.paper.kill-ctrl-a\] table"):
        load_expectations(path, "freebsd")
    with pytest.raises(LabError, match=r"has no \[linux.takeover.kill-ctrl-a\] table"):
        load_expectations(path, "linux", "takeover")
    with pytest.raises(LabError, match=r"'meteor' is not a fault"):
        load_expectations(path, "linux", "paper", "meteor")


def test_the_table_shows_unexpected_verdicts():
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(claims_table([ClaimResult("md5_after_copy", False, "source a, copy b", Expectation.HOLD)]))
    text = console.export_text()
    assert "not reproduced" in text and "UNEXPECTED" in text and "source a, copy b" in text


def test_run_record_writes_events_commands_and_latest_link(tmp_path):
    record = RunRecord.create(tmp_path, "failover")
    record.event("fault", host="ctrl-a")
    record.command(CommandRecord("ctrl-b", "zpool status -v", 0, "pool: x\n", "", 1.0, 0.5, "status"))
    assert (tmp_path / "latest").resolve() == record.folder.resolve()
    events = [json.loads(line) for line in (record.folder / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["run-start", "fault"]
    assert "$ zpool status -v" in (record.folder / "hosts" / "ctrl-b.log").read_text()
    second = RunRecord.create(tmp_path, "failover")
    assert second.folder != record.folder and (tmp_path / "latest").resolve() == second.folder.resolve()
