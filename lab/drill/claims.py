"""The paper's claims, what each stack is expected to show for them, and the verdict table."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from lab.errors import LabError

CLAIMS: dict[str, str] = {
    "provisioned": "both pools ONLINE on both controllers; the client's multipaths have all their paths",
    "copy_completes": "the copy to /storage finishes after ctrl-a is killed (ctrl-b takes the workload)",
    "md5_after_copy": "md5 of the copy equals the source right after the copy (the paper's check)",
    "md5_from_disk": "md5 of the copy read back from disk (caches dropped, remounted) equals the source",
    "survivor_pool_clean": "after the fault, a scrub on ctrl-b finds no errors in ctrl-b's own pool",
    "failed_pool_clean": "a scrub on ctrl-b finds no permanent errors in the failed controller's pool"
                         " (the paper saw errors: repaired 1K, <metadata> entries)",
    "recovery_imports": "the restarted controller exports and re-imports both pools",
    "final_pools_clean": "after recovery, scrub and clear: both pools ONLINE with no known data errors",
    "final_paths_back": "after recovery all client paths are back",
    "final_md5": "after recovery the copy read from disk still has the source's md5",
    # Beyond the paper: what a storage engineer expects of the other faults.
    "frozen_pool_back": "after the frozen controller resumes, its own pool is ONLINE on it again (not suspended)",
    "no_double_import": "while the controllers cannot see each other, neither holds the other's pool",
    "io_after_second_kill": "when the restarted controller dies again mid-recovery, the client still writes and "
                            "reads its filesystem",
}

PAPER_CLAIMS = ("provisioned", "copy_completes", "md5_after_copy", "md5_from_disk", "survivor_pool_clean",
                "failed_pool_clean", "recovery_imports", "final_pools_clean", "final_paths_back", "final_md5")
_LINK_CLAIMS = ("provisioned", "copy_completes", "md5_after_copy", "md5_from_disk", "final_pools_clean",
                "final_paths_back")
FAULT_CLAIMS: dict[str, tuple[str, ...]] = {
    "kill-ctrl-a": PAPER_CLAIMS,
    "kill-ctrl-b": PAPER_CLAIMS,
    "freeze-ctrl-a": (*_LINK_CLAIMS[:4], "frozen_pool_back", *_LINK_CLAIMS[4:]),
    "lost-client-path": _LINK_CLAIMS,
    "split-brain": ("provisioned", "no_double_import", *_LINK_CLAIMS[1:]),
    "kill-during-recovery": ("provisioned", "copy_completes", "md5_after_copy", "md5_from_disk", "io_after_second_kill",
                             "recovery_imports", "final_pools_clean", "final_paths_back", "final_md5"),
}
"""The claims each fault's scenario checks, in the order it checks them."""
ARBITRATORS = ("paper", "takeover")


class Expectation(StrEnum):
    HOLD = "hold"
    FAIL = "fail"
    MAYBE = "maybe"

    def accepts(self, held: bool) -> bool:
        return self is Expectation.MAYBE or (self is Expectation.HOLD) == held


@dataclass
class ClaimResult:
    claim: str
    held: bool
    evidence: str
    expectation: Expectation
    excuse: str = ""
    """Why a claim expected to hold could not hold in this run (an earlier claim it rests on failed);
    an excused claim may go either way, and the excuse is shown beside its verdict."""

    @property
    def effective_expectation(self) -> Expectation:
        return Expectation.MAYBE if self.excuse and self.expectation is Expectation.HOLD else self.expectation

    @property
    def expected(self) -> bool:
        return self.effective_expectation.accepts(self.held)

    def to_json(self) -> dict:
        return {**asdict(self), "text": CLAIMS[self.claim], "expected": self.expected}


def load_expectations(path: Path, stack: str, arbitrator: str = "paper",
                      fault: str = "kill-ctrl-a") -> dict[str, Expectation]:
    """Read ``[<stack>.<arbitrator>.<fault>]`` of the expectations file: claim -> hold | fail | maybe; every
    claim the fault checks must be listed, and nothing else."""
    if fault not in FAULT_CLAIMS:
        raise LabError(f"'{fault}' is not a fault; use one of {', '.join(FAULT_CLAIMS)}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise LabError(f"expectations file {path} cannot be read ({err}); fix or restore it") from None
    where = f"{stack}.{arbitrator}.{fault}"
    table = data.get(stack, {}).get(arbitrator, {}).get(fault)
    if not isinstance(table, dict):
        raise LabError(f"expectations file {path} has no [{where}] table; add one with a line per claim "
                       f"({', '.join(FAULT_CLAIMS[fault])})")
    expectations: dict[str, Expectation] = {}
    for claim in FAULT_CLAIMS[fault]:
        value = table.get(claim)
        if value not in Expectation.__members__.values():
            raise LabError(f"expectations file {path}: [{where}].{claim} is {value!r}; use hold, fail or maybe")
        expectations[claim] = Expectation(value)
    unknown = sorted(set(table) - set(FAULT_CLAIMS[fault]))
    if unknown:
        raise LabError(f"expectations file {path}: [{where}].{unknown[0]} is not a claim of {fault}; "
                       f"use one of {', '.join(FAULT_CLAIMS[fault])}")
    return expectations


def claims_table(results: list[ClaimResult]) -> Table:
    table = Table("claim", "the paper says", "here", "expected", "verdict", "evidence", title="The paper's claims")
    for result in results:
        here = "[green]reproduced[/]" if result.held else "[yellow]not reproduced[/]"
        verdict = "[green]as expected[/]" if result.expected else "[bold red]UNEXPECTED[/]"
        expectation = str(result.expectation)
        if result.effective_expectation is not result.expectation:
            expectation += f" → {result.effective_expectation} ({result.excuse})"
        table.add_row(escape(result.claim), escape(CLAIMS[result.claim]), here, escape(expectation), verdict,
                      escape(result.evidence))
    return table
