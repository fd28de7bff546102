"""A kept lab remembers the drill that ran on it, so one step can be run again (``bst drill --step N``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.drill.context import Drill
from lab.errors import LabError
from lab.labdir import inside
from lab.runfolder import ClaimVerdict, EventKind, SchemaError, StepResult, StepStatus
from lab.runfolder_io import NotARegularFile, loads, read_bytes, replace_file

STATE_NAME = "drill-state.json"
STATE_TYPES: dict[str, type] = {"facts": dict, "steps": list, "claims": list, "run": str}
"""Fields ``resume`` reads and what each must hold; a hand-edited file with other types is refused."""


def save_state(drill: Drill, lab_dir: Path, scenario: str) -> Path:
    path = inside(lab_dir, Path(lab_dir) / STATE_NAME)
    return replace_file(path.parent, path.name, json.dumps({
        "scenario": scenario, "fault": drill.fault, "arbitrator": drill.arbitrator, "victim": drill.victim,
        "run": str(drill.record.folder), "facts": drill.facts, "steps": [s.to_json() for s in drill.steps],
        "claims": [r.to_json() for r in drill.results],
    }, indent=2, default=str).encode())


def load_state(lab_dir: Path, scenario: str, arbitrator: str) -> dict[str, Any]:
    """The kept drill's state; LabError saying what to run first when there is none for this scenario."""
    path = Path(lab_dir) / STATE_NAME
    try:
        raw, cut = read_bytes(Path(lab_dir), path)
        if cut:
            raise ValueError("it is larger than a drill's state can be")
        state = loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise LabError(f"no kept drill in {lab_dir}: run the drill with --keep-lab always (a failed one is kept "
                       "too), then rerun a step") from None
    except ValueError as error:
        raise LabError(f"{path} is damaged ({error}); run the whole drill again") from None
    except NotARegularFile as refusal:
        raise LabError(f"kept drill state {path}: {refusal}; run the whole drill again") from None
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
    try:
        for claim in state.get("claims", []):
            ClaimVerdict.from_json(claim)
        for step in state.get("steps", []):
            StepResult.from_json(step)
    except SchemaError as error:
        return str(error)
    return None


def resume(drill: Drill, state: dict[str, Any], rerun_prefix: str) -> None:
    """Give a fresh Drill what the kept one had learnt; the steps being rerun no longer count as failed."""
    drill.facts.update(state.get("facts", {}))
    drill.steps.extend(step for step in map(StepResult.from_json, state.get("steps", []))
                       if step.status is StepStatus.PASSED or not step.name.startswith(rerun_prefix))
    drill.results.extend(verdict for verdict in map(ClaimVerdict.from_json, state.get("claims", []))
                         if verdict.claim in drill.expectations)
    drill.event(EventKind.RESUMED, from_run=state.get("run"), rerun=rerun_prefix)

