"""The fence listener's record of every request: one JSON object a line (for the drill and the run
folder) beside a human-readable log. ``read_fence_log`` turns the JSON lines back into FenceRequests."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab.errors import LabError
from lab.runfolder_io import loads, read_bytes


@dataclass(frozen=True)
class FenceRequest:
    time_utc: str
    """ISO 8601, UTC, with microseconds."""
    epoch: float
    requester: str
    """The VM whose fence port the request came through."""
    plug: str
    """The VM it asked about (fence_virt's ``-n``)."""
    action: str
    response: str
    seqno: int
    state_before: str
    """running, paused, stopped or absent; ``unknown`` for a plug that is not a host of the lab."""
    seconds: float


def now() -> tuple[str, float]:
    epoch = time.time()
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds"), epoch


def append_request(json_path: Path, text_path: Path, request: FenceRequest) -> None:
    with open(json_path, "a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(request), sort_keys=True) + "\n")
    note(
        text_path,
        f"{request.requester} asked {request.action} {request.plug} (seq {request.seqno}): "
        f"{request.response}, was {request.state_before}, {request.seconds:.2f} s",
    )


def note(text_path: Path, message: str) -> None:
    with open(text_path, "a", encoding="utf-8") as out:
        out.write(f"{now()[0]} {message}\n")


def read_fence_log(path: Path | str) -> list[FenceRequest]:
    """Every request the listener logged, in order; none when the file does not exist yet. A last line
    without its newline is one being written and is left for the next read."""
    path = Path(path)
    try:
        data, cut = read_bytes(path.parent, path)
    except FileNotFoundError:
        return []
    if cut:
        raise LabError(f"fence log {path} is larger than a drill's requests can be; run `bst down` and `bst up`")
    lines = data.decode("utf-8", errors="replace").split("\n")[:-1]
    requests = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            requests.append(FenceRequest(**loads(line)))
        except (ValueError, TypeError) as err:
            raise LabError(f"fence log {path} line {number} is not a fence request ({err}); "
                           "it is written only by the lab's fence listener") from None
    return requests
