"""A kept lab remembers the drill that ran on it, so one step can be run again (``bst drill --step N``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.drill.claims import ClaimResult, Expectation
from lab.drill.runner import Drill
from lab.errors import LabError
from lab.labdir import inside

STATE_NAME = "drill-state.json"
STATE_TYPES: dict[str, type] = {"facts": dict, "failed_steps": list, "claims": list, "run": str}
"""Fields ``resume`` reads and what each must hold; a hand-edited file with other types is refused."""


def save_state(drill: Drill, lab_dir: Path, scenario: str) -> Path:
    path = inside(lab_dir, Path(lab_dir) / STATE_NAME)
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
    except OSError as error:
        raise LabError(f"cannot read {path} ({error.strerror}); run the whole drill again") from None
    problem = _state_problem(state)
    if problem:
        raise LabError(f"{path} is damaged ({problem}); run the whole drill again")
    if (state.get("scenario"), state.get("arbitrator")) != (scenario, arbitrator):
        raise LabError(f"the lab in {lab_dir} was kept by {state.get('scenario')} ({state.get('arbitrator')}), "
                       f"not {scenario} ({arbitrator}); rerun a step of that scenario, or the whole drill")
    return state


def _state_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return f"it holds a JSON {type(state).__name__}, not an object"
    for key, kind in STATE_TYPES.items():
        if key in state and not isinstance(state[key], kind):
            return f"{key!r} is a {type(state[key]).__name__}, not a {kind.__name__}"
    for claim in state.get("claims", []):
        if not isinstance(claim, dict) or not isinstance(claim.get("claim"), str):
            return f"claim {claim!r} is not an object with a claim name"
        try:
            Expectation(claim.get("expectation"))
        except ValueError:
            return f"claim {claim['claim']!r} has no known expectation"
    return None


def resume(drill: Drill, state: dict[str, Any], rerun_prefix: str) -> None:
    """Give a fresh Drill what the kept one had learnt; the steps being rerun no longer count as failed."""
    drill.facts.update(state.get("facts", {}))
    drill.failed_steps.extend(s for s in map(str, state.get("failed_steps", [])) if not s.startswith(rerun_prefix))
    for claim in state.get("claims", []):
        if claim.get("claim") in drill.expectations:
            drill.results.append(ClaimResult(claim["claim"], bool(claim["held"]), str(claim.get("evidence", "")),
                                             Expectation(claim["expectation"]), str(claim.get("excuse", ""))))
    drill.record.event("resumed", from_run=state.get("run"), rerun=rerun_prefix)
