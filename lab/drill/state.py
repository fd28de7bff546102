"""A kept lab remembers the drill that ran on it, so one step can be run again (``bst drill --step N``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.drill.claims import ClaimResult, Expectation
from lab.drill.runner import Drill
from lab.errors import LabError

STATE_NAME = "drill-state.json"


def save_state(drill: Drill, lab_dir: Path, scenario: str) -> Path:
    path = Path(lab_dir) / STATE_NAME
    path.write_text(json.dumps({
        "scenario": scenario, "fault": drill.fault, "arbitrator": drill.arbitrator, "victim": drill.victim,
        "run": str(drill.record.folder), "facts": drill.facts, "failed_steps": drill.failed_steps,
        "claims": [r.to_json() for r in drill.results],
    }, indent=2, default=str))
    return path


def load_state(lab_dir: Path, scenario: str, arbitrator: str) -> dict[str, Any]:
    """The kept drill's state; LabError saying what to run first when there is none for this scenario."""
    path = Path(lab_dir) / STATE_NAME
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no kept drill in {lab_dir}: run the drill with --keep-lab always (a failed one is kept "
                       "too), then rerun a step") from None
    except ValueError as error:
        raise LabError(f"{path} is damaged ({error}); run the whole drill again") from None
    if (state.get("scenario"), state.get("arbitrator")) != (scenario, arbitrator):
        raise LabError(f"the lab in {lab_dir} was kept by {state.get('scenario')} ({state.get('arbitrator')}), "
                       f"not {scenario} ({arbitrator}); rerun a step of that scenario, or the whole drill")
    return state


def resume(drill: Drill, state: dict[str, Any], rerun_prefix: str) -> None:
    """Give a fresh Drill what the kept one had learnt; the steps being rerun no longer count as failed."""
    drill.facts.update(state.get("facts", {}))
    drill.failed_steps.extend(s for s in state.get("failed_steps", []) if not s.startswith(rerun_prefix))
    for claim in state.get("claims", []):
        if claim.get("claim") in drill.expectations:
            drill.results.append(ClaimResult(claim["claim"], bool(claim["held"]), str(claim.get("evidence", "")),
                                             Expectation(claim["expectation"]), str(claim.get("excuse", ""))))
    drill.record.event("resumed", from_run=state.get("run"), rerun=rerun_prefix)
