"""What the drill concludes from the lab's fence log: a fencing the fault did not provoke, or one that
failed, breaks no_spurious_fencing; failover_by_cluster needs the cluster's own fencing and import."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

from lab.drill.cluster import judge_failover, judge_fencing
from lab.drill.context import Drill
from lab.record import RunRecord
from lab.runfolder import Expectation


def _drill(tmp_path, arbitrator="cluster", requests=()) -> Drill:
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(json.dumps({
        "time_utc": "", "epoch": epoch, "requester": requester, "plug": plug, "action": action,
        "response": response, "seqno": 1, "state_before": "running", "seconds": 0.1}) + "\n"
        for epoch, requester, plug, action, response in requests))
    provider = SimpleNamespace(fence_log_path=lambda: log)
    topo = SimpleNamespace(peer=lambda name: SimpleNamespace(name="ctrl-b" if name == "ctrl-a" else "ctrl-a"))
    session = SimpleNamespace(provider=provider, topo=topo)
    expect = {c: Expectation.MAYBE for c in ("no_spurious_fencing", "failover_by_cluster")}
    drill = Drill(session, RunRecord.create(tmp_path / "runs", "t"), expect, arbitrator=arbitrator, victim="ctrl-a")
    return drill


def verdict(drill: Drill, claim: str):
    return next(r for r in drill.results if r.claim == claim)


def test_fencing_the_struck_controller_after_the_fault_is_provoked_and_status_checks_are_no_fencing(tmp_path):
    now = time.time() + 5
    drill = _drill(tmp_path, requests=[(now - 1, "ctrl-a", "ctrl-b", "status", "success"),
                                       (now + 8, "ctrl-b", "ctrl-a", "off", "success")])
    drill.facts["fault_at"] = now
    judge_fencing(drill, {"ctrl-a"})
    assert verdict(drill, "no_spurious_fencing").held
    assert "1 fencing" in verdict(drill, "no_spurious_fencing").evidence


def test_a_fencing_no_fault_provoked_or_before_the_fault_or_that_failed_is_spurious(tmp_path):
    now = time.time() + 5
    for requests, provoked, words in (
        ([(now + 3, "ctrl-a", "ctrl-b", "off", "success")], {"ctrl-a"}, "unprovoked"),
        ([(now - 3, "ctrl-b", "ctrl-a", "off", "success")], {"ctrl-a"}, "before the fault"),
        ([(now + 3, "ctrl-b", "ctrl-a", "off", "success")], set(), "unprovoked"),
        ([(now + 3, "ctrl-b", "ctrl-a", "reboot", "fail")], {"ctrl-a"}, "answered fail"),
    ):
        drill = _drill(tmp_path, requests=requests)
        drill.facts["fault_at"] = now
        judge_fencing(drill, provoked)
        result = verdict(drill, "no_spurious_fencing")
        assert not result.held and words in result.evidence


def test_only_a_cluster_that_fenced_and_imported_by_itself_fails_over_by_cluster(tmp_path):
    now = time.time()
    fenced = [SimpleNamespace(epoch=now + 7, requester="ctrl-b", plug="ctrl-a", action="off", response="success")]
    drill = _drill(tmp_path)
    drill.facts.update(fault_at=now, takeover_s=21.0, fenced_after_s=7.0)
    judge_failover(drill, "ctrl-a", "ctrl-a_m0", True, fenced, 21.0)
    assert verdict(drill, "failover_by_cluster").held
    judge_failover(drill, "ctrl-a", "ctrl-a_m0", True, [], 21.0)
    assert "nobody fenced ctrl-a" in verdict(drill, "failover_by_cluster").evidence
    assert not verdict(drill, "failover_by_cluster").held
    judge_failover(drill, "ctrl-a", "ctrl-a_m0", False, fenced, 180.0)
    assert not verdict(drill, "failover_by_cluster").held
    oracle = _drill(tmp_path, arbitrator="takeover")
    judge_failover(oracle, "ctrl-a", "ctrl-a_m0", True, [], 20.0)
    assert not verdict(oracle, "failover_by_cluster").held
    assert "oracle" in verdict(oracle, "failover_by_cluster").evidence


FIXTURES = Path(__file__).parent / "fixtures" / "cluster"
JOURNAL = (FIXTURES / "ctrl-b-takeover-journal.txt").read_text()
"""Lines of a real cluster-mode takeover (run 20261201T021035Z), one marker stale (before the fault) and one of
another pool added."""


def test_the_survivors_journal_says_where_every_second_of_the_takeover_went():
    from datetime import datetime

    from lab.stacks import get_stack
    from lab.topology import load_topology

    topo = load_topology()
    takeover_timeline = get_stack("linux").takeover_timeline
    struck = datetime.fromisoformat("2026-12-01T02:11:22.023+00:00").timestamp()
    timeline = takeover_timeline(topo, JOURNAL, struck, "ctrl-a")
    assert timeline == {"token lost": 2.5, "membership without the victim": 6.1, "fencing requested": 10.9,
                        "fenced": 12.3, "import started": 12.5, "imported": 53.4, "map switched": 63.0}
    assert list(timeline) == list(dict.fromkeys(timeline))
    assert get_stack("freebsd").takeover_timeline(topo, JOURNAL, struck, "ctrl-a") == {}
    assert takeover_timeline(topo, JOURNAL, struck, "ctrl-b") == {
        "token lost": 2.5, "membership without the victim": 6.1}


def test_a_real_kill_of_ctrl_a_is_placed_mark_by_mark_from_links_down_to_the_map_switch():
    """ctrl-b's journal of a kill-ctrl-a drill on this machine (2026-12-07, token 3000 ms, consensus 3600 ms)."""
    from datetime import datetime

    from lab.stacks import get_stack
    from lab.topology import load_topology

    journal = (FIXTURES / "ctrl-b-kill-ctrl-a-journal.txt").read_text()
    struck = datetime.fromisoformat("2026-12-07T21:28:25.301945+00:00").timestamp()
    timeline = get_stack("linux").takeover_timeline(load_topology(), journal, struck, "ctrl-a")
    assert timeline == {"links down": 0.4, "token lost": 2.2, "membership without the victim": 5.8,
                        "Pacemaker lost the victim": 5.8, "new DC elected": 5.9, "transition calculated": 6.7,
                        "fencing requested": 6.9, "fenced": 7.5, "import started": 7.5, "imported": 24.4,
                        "map switched": 28.3}
