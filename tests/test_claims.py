from pathlib import Path

import pytest

from lab.drill.claims import (
    ARBITRATORS,
    CLAIMS,
    KILL_CLAIMS,
    PAPER_CLAIMS,
    Expectation,
    claims_table,
    load_expectations,
    verdict,
)
from lab.drill.scenario import load_scenario, scenario_paths
from lab.errors import LabError

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
EXPECTATIONS = SCENARIOS / "expectations.toml"
DECLARED = [load_scenario(path) for path in scenario_paths(SCENARIOS)]
KILL_A = next(s for s in DECLARED if s.fault == "kill-ctrl-a")


def paper_expectations(stack: str, arbitrator: str = "paper") -> dict:
    return load_expectations(EXPECTATIONS, stack, arbitrator, "kill-ctrl-a", KILL_CLAIMS)


@pytest.mark.parametrize("scenario", DECLARED, ids=lambda s: s.name)
@pytest.mark.parametrize(("stack", "arbitrator"),
                         [("linux", "paper"), ("linux", "takeover"), ("linux", "cluster"), ("freebsd", "paper")])
def test_the_shipped_expectations_cover_every_scenario_in_every_mode(stack, arbitrator, scenario):
    expectations = load_expectations(EXPECTATIONS, stack, arbitrator, scenario.fault, scenario.claims)
    assert list(expectations) == list(scenario.claims)


def test_every_claim_is_checked_by_some_scenario_and_described():
    assert {c for s in DECLARED for c in s.claims} == set(CLAIMS)
    assert KILL_A.claims == KILL_CLAIMS and set(ARBITRATORS) == {"paper", "takeover", "cluster"}
    assert [c for c in KILL_CLAIMS if c in PAPER_CLAIMS] == list(PAPER_CLAIMS)


def test_only_the_cluster_is_expected_to_take_over_on_its_own_and_every_mode_to_fence_nobody_spuriously():
    for arbitrator, decides in (("paper", Expectation.FAIL), ("takeover", Expectation.FAIL),
                                ("cluster", Expectation.HOLD)):
        expected = load_expectations(EXPECTATIONS, "linux", arbitrator, "kill-ctrl-a", KILL_CLAIMS)
        assert expected["failover_by_cluster"] is decides
        assert expected["no_spurious_fencing"] is Expectation.HOLD


def test_the_paper_saw_errors_on_the_failed_pool_so_freebsd_expects_them():
    assert paper_expectations("freebsd")["failed_pool_clean"] is Expectation.FAIL


def test_the_takeover_arbitrator_is_expected_to_keep_the_data_the_paper_may_lose():
    takeover = paper_expectations("linux", "takeover")
    paper = paper_expectations("linux", "paper")
    assert takeover["md5_from_disk"] is Expectation.HOLD and paper["md5_from_disk"] is Expectation.MAYBE


@pytest.mark.parametrize(("expectation", "held", "accepted"), [
    (Expectation.HOLD, True, True), (Expectation.HOLD, False, False),
    (Expectation.FAIL, False, True), (Expectation.FAIL, True, False),
    (Expectation.MAYBE, True, True), (Expectation.MAYBE, False, True),
])
def test_expectations_accept_only_what_they_say(expectation, held, accepted):
    assert verdict("md5_from_disk", held, "e", expectation).expected is accepted


def test_a_missing_or_unknown_claim_is_one_clear_line(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text("[linux.paper.kill-ctrl-a]\nprovisioned = 'hold'\n")

    def load(stack="linux", arbitrator="paper", fault="kill-ctrl-a"):
        return load_expectations(path, stack, arbitrator, fault, PAPER_CLAIMS)

    with pytest.raises(LabError, match=r"\[linux.paper.kill-ctrl-a\]\.copy_completes is None; use hold, fail or maybe"):
        load()
    path.write_text("\n".join(["[linux.paper.kill-ctrl-a]", *(f"{c} = 'hold'" for c in PAPER_CLAIMS),
                               "fast = 'hold'"]))
    with pytest.raises(LabError, match=r"\[linux.paper.kill-ctrl-a\]\.fast is not a claim of kill-ctrl-a"):
        load()
    with pytest.raises(LabError, match=r"has no \[freebsd.paper.kill-ctrl-a\] table"):
        load("freebsd")
    with pytest.raises(LabError, match=r"has no \[linux.takeover.kill-ctrl-a\] table"):
        load("linux", "takeover")
    with pytest.raises(LabError, match=r"has no \[linux.paper.meteor\] table"):
        load("linux", "paper", "meteor")


def test_the_table_shows_unexpected_verdicts():
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(claims_table([verdict("md5_after_copy", False, "source a, copy b", Expectation.HOLD)]))
    text = console.export_text()
    assert "not reproduced" in text and "UNEXPECTED" in text and "source a, copy b" in text
