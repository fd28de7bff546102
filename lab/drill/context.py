"""One drill in progress: the lab session, what it has observed (facts), and the claims judged so far.

Steps, the workload and the nemesis act through a ``Drill``; the orchestrator creates it and writes what
it holds to the run folder. It knows no provider or stack detail: it asks the stack for commands and facts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from lab.drill.claims import Judged, verdict
from lab.errors import ParseError
from lab.executor import StepEvent
from lab.plan import Plan
from lab.record import RunRecord
from lab.runfolder import ClaimVerdict, EventKind, Expectation, Reason, StepResult, StepStatus
from lab.session import LabSession
from lab.stacks.facts import Fact

if TYPE_CHECKING:
    from lab.drill.nemesis import Nemesis

T = TypeVar("T")

INJECTIONS = {
    "corrupt-copy": "bytes flipped in the copy on the client: md5_after_copy must fail",
    "pool-error": "the survivor's own data disk overwritten behind ZFS: survivor_pool_clean must fail",
    "dead-path": "the client's path through the survivor failed after recovery: final_paths_back must fail",
    "corrupt-fio-block": "a block fio wrote overwritten on the client behind fio's back: acknowledged_writes_survive "
                         "must fail",
}
"""Faults injected on purpose to prove the checker can fail (``--inject``)."""


class StepError(AssertionError):
    """A drill step could not do its work, or a claim came out unexpected; the message says which."""


class UndeclaredClaim(StepError):
    """A step judged a claim its ``Step(judges=...)`` does not list: the declaration is wrong, and with it
    the scenario's claims and the expectations they ask for."""


@dataclass
class Drill:
    session: LabSession
    record: RunRecord
    expectations: dict[str, Expectation]
    fault: str = "kill-ctrl-a"
    """What the scenario does to the lab (a row of the faults × modes matrix)."""
    arbitrator: str = "paper"
    """How the controllers share their pools: the paper's cross import, or takeover with multihost."""
    victim: str = ""
    """The controller the nemesis strikes."""
    nemesis: Nemesis | None = None
    inject: frozenset[str] = frozenset()
    results: list[ClaimVerdict] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    interrupted: bool = False
    judging: tuple[str, ...] | None = None
    """The claims the running step declared it judges (the orchestrator sets it per step); None: no step
    runs, nothing is checked against a declaration."""
    on_progress: Callable[[str], None] = field(default=lambda text: None, repr=False)
    """Told what the drill is doing now, in a few words (the live display)."""
    on_plan_step: Callable[[StepEvent], None] = field(default=lambda event: None, repr=False)
    """Told when a host starts or ends a step of a plan the drill applies."""

    @property
    def survivor(self) -> str:
        return self.session.topo.peer(self.victim).name

    @property
    def failed_steps(self) -> list[str]:
        return [s.name for s in self.steps if s.status is StepStatus.FAILED]

    def apply(self, plan: Plan, label: str) -> None:
        """Apply a stack's plan (provisioning, takeover, recovery), each host's progress shown as it goes."""
        self.session.apply(plan, label, on_step=self.on_plan_step)

    def event(self, kind: EventKind, **data: Any) -> None:
        self.record.event(kind, **data)

    def injects(self, fault: str, host: str, command: str) -> bool:
        """Run ``command`` on ``host`` when ``fault`` was asked for; whether it was."""
        if fault not in self.inject:
            return False
        self.event(EventKind.INJECT, fault=fault, host=host, command=command)
        self.must(host, command, 300, f"inject-{fault}")
        return True

    def claim(self, claim: str, held: bool, evidence: str, *, excuse: str = "", reason: Reason | None = None,
              detail: str = "") -> ClaimVerdict:
        """Record a claim's verdict; StepError when the expectations file did not expect it (a claim expected
        to hold may go either way when ``excuse`` says why this run could not reproduce it); UndeclaredClaim,
        with nothing recorded, when the running step did not declare that it judges ``claim``."""
        if self.judging is not None and claim not in self.judging:
            raise UndeclaredClaim(f"claim '{claim}' was judged by a step that does not declare it (it judges "
                                  f"{', '.join(self.judging) or 'nothing'}): add it to the step's judges")
        result = verdict(claim, held, evidence, self.expectations[claim], reason, detail, excuse)
        self.results = [r for r in self.results if r.claim != claim] + [result]
        self.event(EventKind.CLAIM, **result.to_json())
        if not result.expected:
            said = "held" if held else "did not hold"
            raise StepError(f"claim '{claim}' {said} but was expected to {result.effective_expectation}: {evidence}")
        return result

    def judged(self, judged: Judged) -> ClaimVerdict:
        """Record one claim a step judged (see ``claim``)."""
        return self.claim(judged.claim, judged.held, judged.evidence, excuse=judged.excuse, reason=judged.reason,
                          detail=judged.detail)

    def claims(self, *judged: Judged) -> None:
        """Record every claim judged, then fail with all the unexpected ones together."""
        self.all_of(*(lambda j=j: self.judged(j) for j in judged))

    def all_of(self, *checks: Callable[[], object]) -> None:
        """Run every check even when an earlier one fails; then fail with every error together."""
        errors = []
        for check in checks:
            try:
                check()
            except StepError as error:
                errors.append(str(error))
        if errors:
            raise StepError("; ".join(errors))

    def held(self, claim: str) -> bool | None:
        """The verdict this run recorded for a claim, None before it was checked."""
        return next((r.held for r in reversed(self.results) if r.claim == claim), None)

    def must(self, host: str, cmd: str, timeout: float = 120, label: str = "") -> str:
        """Run a command that has to succeed for the step to make sense; its stdout."""
        result = self.session.run(host, cmd, timeout, label)
        if result.exit_code != 0:
            raise StepError(f"{host}: `{cmd}` {result.ending}: {result.last_line()}")
        return result.stdout

    def fact(self, host: str, fact: Fact[T], label: str) -> T:
        """Ask ``host`` for a fact: its raw output kept as ``<saved_as>/<host>-<label>.txt``, its value parsed."""
        result = self.session.run(host, fact.command, fact.timeout_s, f"{fact.name}-{label}")
        self.record.save(f"{fact.saved_as}/{host}-{label}.txt", result.stdout + result.stderr)
        if result.exit_code != 0:
            raise StepError(f"{host}: {fact.name} (`{fact.command}`) {result.ending}: {result.last_line()[:200]}")
        try:
            return fact.read(result.stdout, result.stderr)
        except ParseError as error:
            raise StepError(f"{host}: {fact.name} output could not be read: {error}") from None

    def pool_status(self, host: str, label: str) -> list:
        return self.fact(host, self.session.stack.pool_status_fact(), label)

    def client_paths(self, label: str) -> dict[str, dict[str, str]]:
        topo = self.session.topo
        return self.fact(topo.client.host, self.session.stack.client_paths_fact(topo), label)

    def client_path_portals(self, label: str) -> dict[str, str]:
        """Which portal address each of the client's iSCSI disks came from."""
        return self.fact(self.session.topo.client.host, self.session.stack.client_portals_fact(), f"{label}-sessions")

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 2.0) -> T:
        """Poll ``probe()`` until it returns something truthy; StepError naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StepError(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)
