"""Scenarios are declarations: each module of scenarios/ declares one, and none imports another."""

import ast
from pathlib import Path

import pytest

from lab.drill import steps
from lab.drill.nemesis import PowerOff
from lab.drill.scenario import Scenario, Step, load_scenario, scenario_paths
from lab.errors import LabError

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
PATHS = scenario_paths(SCENARIOS)


def test_every_module_declares_a_scenario_with_its_own_fault():
    declared = [load_scenario(path) for path in PATHS]
    assert [s.name for s in declared] == [p.stem for p in PATHS] and len(declared) >= 6
    assert len({s.fault for s in declared}) == len(declared)
    assert all(s.doc for s in declared)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_scenario_imports_another_or_defines_tests(path):
    tree = ast.parse(path.read_text())
    siblings = {p.stem for p in PATHS} | {"conftest", "scenarios"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & siblings, ast.unparse(node)
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and (node.module or "").split(".")[0] not in siblings, ast.unparse(node)
        if isinstance(node, ast.FunctionDef):
            assert not node.name.startswith("test"), f"{path.name} defines {node.name}: declare steps instead"


def test_steps_up_to_the_strike_need_the_one_before_and_later_ones_need_the_strike():
    paper = Scenario(fault="f", victim="ctrl-a", nemesis=PowerOff, steps=steps.PAPER_STEPS)
    assert [paper.needs(n) for n in range(1, 8)] == [
        None, "test_1_lab_is_provisioned_and_healthy", "test_2_copy_starts",
        *["test_3_kill_a_controller_during_the_copy"] * 4]


def test_a_declaration_with_an_unknown_claim_or_no_strike_is_one_clear_line():
    with pytest.raises(LabError, match="step quick judges 'fast', which is not a claim"):
        Step("quick", print, judges=("fast",))
    with pytest.raises(LabError, match="exactly one step that strikes"):
        Scenario(fault="f", victim="ctrl-a", nemesis=PowerOff, steps=(Step("a", print),))


def test_a_scenarios_claims_follow_from_its_steps_in_order_each_once():
    scenario = Scenario(fault="f", victim="ctrl-a", nemesis=PowerOff, steps=(
        steps.HEALTHY, steps.COPY, Step("strike", print, strikes=True, judges=("failover_by_cluster",)),
        Step("own", print, judges=("io_after_second_kill", "failover_by_cluster", "provisioned")), steps.FINAL))
    assert scenario.claims == ("provisioned", "failover_by_cluster", "io_after_second_kill", *steps.FINAL.judges)


def test_a_module_without_a_declaration_is_refused(tmp_path):
    path = tmp_path / "meteor.py"
    path.write_text("def test_1():\n    pass\n")
    with pytest.raises(LabError, match="declares no SCENARIO"):
        load_scenario(path)


READ_BACK = ("copy_completes", "md5_after_copy", "md5_from_disk", "acknowledged_writes_survive")
SAFETY = ("no_double_import", "no_spurious_fencing")
KILLED = ("provisioned", "failover_by_cluster", *READ_BACK, "survivor_pool_clean", "failed_pool_clean",
          "recovery_imports", "final_pools_clean", "final_paths_back", "final_md5", "final_acknowledged_writes",
          *SAFETY)
TRANSIENT = ("provisioned", *READ_BACK, "final_pools_clean", "final_paths_back", "final_acknowledged_writes", *SAFETY)
CHECKED = {
    "failover": KILLED,
    "freeze": ("provisioned", *READ_BACK, "frozen_pool_back", "final_pools_clean", "final_paths_back",
               "final_acknowledged_writes", *SAFETY),
    "isolate_ctrl_a": TRANSIENT,
    "kill_ctrl_b": KILLED,
    "kill_during_recovery": ("provisioned", "failover_by_cluster", *READ_BACK, "io_after_second_kill",
                             "recovery_imports", "final_pools_clean", "final_paths_back", "final_md5",
                             "final_acknowledged_writes", *SAFETY),
    "lost_client_path": TRANSIENT,
    "split_brain": TRANSIENT,
}
"""What each scenario checks, in the order it judges it: spelled out here so that no refactoring of how
the claims are declared can change them (scenarios/expectations.toml lists exactly these)."""


def test_each_scenario_checks_the_same_claims_in_the_same_order():
    assert {s.name: s.claims for s in map(load_scenario, PATHS)} == CHECKED
