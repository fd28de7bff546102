"""The paper's experiment: copy a file, kill ctrl-a, check md5, scrub, recover. Steps run in file order.

Each step records what it observed in the run folder and checks the paper's claims against
scenarios/expectations.toml; the run fails on any verdict that file does not expect. Other scenarios
reuse these steps with another victim (``VICTIM``) and the drill runs them in each arbitrator mode.
"""

from __future__ import annotations

import time

import pytest

from lab.drill import actions
from lab.drill.paths import controllers_behind_dead_paths
from lab.drill.runner import Drill, StepError
from lab.errors import LabError

pytestmark = pytest.mark.vm

FAULT = "kill-ctrl-a"
VICTIM = "ctrl-a"


def _victim(drill: Drill) -> str:
    return drill.victim or drill.session.topo.controllers[0].name


def _survivor(drill: Drill) -> str:
    return drill.session.topo.peer(_victim(drill)).name


def test_1_lab_is_provisioned_and_healthy(drill: Drill):
    problems = actions.layout_problems(drill, "before-fault") + actions.client_path_problems(drill, "before-fault")
    layout = ("both pools ONLINE on both controllers" if drill.arbitrator == "paper"
              else "each pool ONLINE on its owner only")
    healthy = f"{layout}; every client multipath has 2 live paths"
    drill.claim("provisioned", not problems, "; ".join(problems) or healthy)


def test_2_copy_starts(drill: Drill):
    drill.requires("test_1_")
    actions.start_copy(drill)


def test_3_kill_a_controller_during_the_copy(drill: Drill):
    drill.requires("test_2_")
    still_copying = actions.into_the_copy(drill)
    victim = _victim(drill)
    drill.session.power_off(victim)
    drill.facts["fault_at"] = time.time()
    if not still_copying:
        raise StepError(f"the copy had already finished when {victim} was killed: raise drill.copy_size_mb "
                        "or lower drill.kill_after_s in the topology")
    actions.take_over(drill, victim)


def test_4_copy_finishes_through_the_survivor_and_md5_matches(drill: Drill):
    drill.requires("test_3_")
    actions.copy_finishes_and_reads_back(drill, survivor=_survivor(drill))


def test_5_scrub_on_the_survivor(drill: Drill):
    drill.requires("test_3_")
    topo, stack = drill.session.topo, drill.session.stack
    survivor = _survivor(drill)
    own = topo.pool_of(survivor).name
    failed_pool = topo.pool_of(_victim(drill)).name
    failed_status = actions.scrub(drill, survivor, failed_pool, "survivor-failed-pool")
    drill.injects("pool-error", survivor, stack.corrupt_disk_command(topo, topo.pool_of(survivor).data[0]))
    own_status = actions.scrub(drill, survivor, own, "survivor-own-pool")
    drill.facts["scrub_survivor"] = {s.name: actions.errors_summary(s) for s in (failed_status, own_status)}
    actions.claims(drill, *((claim, actions.is_clean(status), actions.errors_summary(status))
                            for claim, status in (("survivor_pool_clean", own_status),
                                                  ("failed_pool_clean", failed_status))))


def test_6_recovery_as_the_paper_describes(drill: Drill):
    drill.requires("test_3_")
    topo, stack, session = drill.session.topo, drill.session.stack, drill.session
    failed = _victim(drill)
    session.start(failed)
    session.provider.wait_for_ssh(failed, topo.lab.boot_timeout_s)
    session.save_console(failed, "restarted")
    drill.facts.pop("recovery_error", None)
    plan_error = ""
    try:
        session.apply(stack.recovery(topo, failed), "recovery")
    except LabError as error:
        plan_error = str(error)
        drill.facts["recovery_error"] = plan_error
    wanted = actions.expected_layout(drill)[failed]
    problems = actions.pool_problems(drill.pool_status(failed, "after-recovery"), failed, wanted)
    evidence = "; ".join(problems) or f"{failed} imported {' and '.join(wanted)} again"
    if plan_error:
        evidence += f"; the recovery plan stopped: {plan_error}"
    actions.claims(drill, ("recovery_imports", not problems, evidence))


def test_7_final_state(drill: Drill):
    drill.requires("test_3_")
    topo = drill.session.topo
    problems = actions.layout_problems(drill, "final")
    for controller, pools in actions.expected_layout(drill).items():
        problems += [f"on {controller}: {actions.errors_summary(s)}"
                     for s in drill.pool_status(controller, "final") if s.name in pools and not actions.is_clean(s)]
    first_map = topo.client.multipaths[0].name
    drill.injects("dead-path", topo.client.host, drill.session.stack.fail_client_path_command(topo, first_map))
    states = drill.client_paths("final")
    paths = actions.path_problems(states, [m.name for m in topo.client.multipaths])
    failed = _victim(drill)
    paths_excuse = ""
    if paths and drill.held("recovery_imports") is False:
        behind = controllers_behind_dead_paths(topo, states, drill.client_path_portals("final"))
        if behind == {failed}:
            paths_excuse = (f"{failed} did not import its pools again (recovery_imports), so the paths it "
                            "serves cannot come back; every dead path leads to it")
    md5, how = actions.remounted_md5(drill, "final")
    drill.facts["md5_final"] = md5
    actions.claims(
        drill,
        ("final_pools_clean", not problems, "; ".join(problems) or "every pool ONLINE where it belongs, no known "
                                                                   "data errors"),
        ("final_paths_back", not paths, "; ".join(paths) or "every client multipath has 2 live paths", paths_excuse),
        ("final_md5", md5 == drill.facts["source_md5"], f"source {drill.facts['source_md5']}, final {md5} ({how})"),
    )
