"""The drill's state across its ordered steps: claims checked against expectations as they are observed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lab.drill.claims import ClaimResult, Expectation
from lab.parsers.zpool import parse_zpool_status
from lab.record import RunRecord
from lab.session import LabSession

INJECTIONS = {
    "corrupt-copy": "bytes flipped in the copy on the client: md5_after_copy must fail",
    "pool-error": "the survivor's own data disk overwritten behind ZFS: survivor_pool_clean must fail",
    "dead-path": "the client's path through the survivor failed after recovery: final_paths_back must fail",
}


class StepError(AssertionError):
    """A drill step could not do its work; the message says what was wrong."""


@dataclass
class Drill:
    session: LabSession
    record: RunRecord
    expectations: dict[str, Expectation]
    results: list[ClaimResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    failed_steps: list[str] = field(default_factory=list)
    inject: frozenset[str] = frozenset()
    """Faults injected to prove the checker can fail (see INJECTIONS)."""
    interrupted: bool = False
    fault: str = "kill-ctrl-a"
    """What the scenario does to the lab (a row of the faults × modes matrix)."""
    arbitrator: str = "paper"
    victim: str = ""
    """The controller the scenario kills or freezes (empty: the topology's first controller)."""
    """How the controllers share their pools: the paper's cross import, or takeover with multihost."""

    def injects(self, fault: str, host: str, command: str) -> bool:
        """Run ``command`` on ``host`` when ``fault`` was asked for; whether it was."""
        if fault not in self.inject:
            return False
        self.record.event("inject", fault=fault, host=host, command=command)
        self.must(host, command, 300, f"inject-{fault}")
        return True

    def claim(self, claim: str, held: bool, evidence: str, excuse: str = "") -> ClaimResult:
        """Record a claim's verdict; raise when the expectations file did not expect it (a claim expected to
        hold may go either way when ``excuse`` says why this run could not reproduce it)."""
        result = ClaimResult(claim, held, evidence, self.expectations[claim], excuse)
        self.results = [r for r in self.results if r.claim != claim] + [result]
        self.record.event("claim", **result.to_json())
        if not result.expected:
            verdict = "held" if held else "did not hold"
            raise StepError(f"claim '{claim}' {verdict} but was expected to {result.effective_expectation}: {evidence}")
        return result

    def must(self, host: str, cmd: str, timeout: float = 120, label: str = "") -> str:
        """Run a command that has to succeed for the step to make sense; its stdout."""
        result = self.session.run(host, cmd, timeout, label)
        if result.exit_code != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise StepError(f"{host}: `{cmd}` exited {result.exit_code}: {tail[0]}")
        return result.stdout

    def pool_status(self, host: str, name: str) -> list:
        """``zpool status -v`` on a host, saved under ``zpool/<host>-<name>.txt`` and parsed; with no pool
        imported, OpenZFS prints "no pools available" on stderr, which parses to no pools."""
        result = self.session.run(host, self.session.stack.pool_status_command(), 60, f"zpool-status-{name}")
        self.record.save(f"zpool/{host}-{name}.txt", result.stdout + result.stderr)
        if result.exit_code != 0:
            raise StepError(f"{host}: zpool status exited {result.exit_code}: {result.stderr.strip()[:200]}")
        return parse_zpool_status(result.stdout or result.stderr)

    def client_paths(self, name: str) -> dict[str, dict[str, str]]:
        topo, stack = self.session.topo, self.session.stack
        text = self.must(topo.client.host, stack.client_paths_command(topo), 60, f"paths-{name}")
        self.record.save(f"paths/{topo.client.host}-{name}.txt", text)
        return stack.parse_client_paths(topo, text)

    def client_path_portals(self, name: str) -> dict[str, str]:
        """Which portal address each of the client's iSCSI disks came from."""
        topo, stack = self.session.topo, self.session.stack
        text = self.must(topo.client.host, stack.client_sessions_command(), 60, f"sessions-{name}")
        self.record.save(f"paths/{topo.client.host}-{name}-sessions.txt", text)
        return stack.parse_client_path_portals(text)

    def held(self, claim: str) -> bool | None:
        """The verdict this run recorded for a claim, None before it was checked."""
        return next((r.held for r in reversed(self.results) if r.claim == claim), None)

    def wait_for(self, what: str, probe, timeout: float, interval: float = 2.0):
        """Poll ``probe()`` until it returns something truthy; StepError naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StepError(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def requires(self, *steps: str) -> None:
        """Stop when an earlier step failed; ``steps`` are step names or their "test_N_" prefixes."""
        missing = [s for s in self.failed_steps if any(s.startswith(step) for step in steps)]
        if missing:
            raise StepError(f"cannot run: earlier step {missing[0]} failed (see its error above)")

