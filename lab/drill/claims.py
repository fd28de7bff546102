"""The claims a drill checks (the paper's and beyond), what each stack is expected to show, the verdict table.

A step declares which claims it judges, and a scenario checks those of its steps; ``scenarios/expectations.toml``
says, per stack, arbitrator mode and fault, whether each must hold, is known to fail, or may go either way.
"""

from __future__ import annotations

import tomllib
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from lab.errors import LabError
from lab.runfolder import ClaimVerdict, Expectation, Reason
from lab.topology.load import ARBITRATORS

__all__ = ["ARBITRATORS", "CLAIMS", "FAILOVER_CLAIMS", "FINAL_FIO_CLAIM", "FIO_CLAIM", "KILL_CLAIMS", "PAPER_CLAIMS",
           "SAFETY_CLAIMS", "ClaimVerdict", "Expectation", "Judged", "Reason", "claims_table", "load_expectations",
           "verdict"]

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
    "no_double_import": "no pool is ever imported on both controllers at once (each controller's imports "
                        "sampled every second through the drill, and any forced import a step tried)",
    "failover_by_cluster": "the lost controller is fenced and its pool taken over by the cluster on its own "
                           "(the drill only strikes and watches)",
    "no_spurious_fencing": "no controller is fenced unless the fault took it away from its peer, and every "
                           "fencing asked for succeeds",
    "io_after_second_kill": "when the restarted controller dies again mid-recovery, the client still writes and "
                            "reads its filesystem",
    "acknowledged_writes_survive": "after the fault, every write fio saw acknowledged reads back intact (fio's own "
                                   "verify-only pass, direct I/O)",
    "final_acknowledged_writes": "after recovery, every write fio saw acknowledged still reads back intact",
}

PAPER_CLAIMS = ("provisioned", "copy_completes", "md5_after_copy", "md5_from_disk", "survivor_pool_clean",
                "failed_pool_clean", "recovery_imports", "final_pools_clean", "final_paths_back", "final_md5")
"""What the paper's experiment checks, in the order it checks them."""

FAILOVER_CLAIMS = ("failover_by_cluster",)
"""Judged where a controller is lost: who decided the takeover."""
SAFETY_CLAIMS = ("no_double_import", "no_spurious_fencing")
"""Judged at the end of every fault's drill, from the whole run's history."""
FIO_CLAIM = "acknowledged_writes_survive"
"""Judged with the paper's md5 from disk, from fio's verify-only pass after the fault."""
FINAL_FIO_CLAIM = "final_acknowledged_writes"
"""Judged with the final state, from fio's verify-only pass after recovery."""
KILL_CLAIMS = (PAPER_CLAIMS[0], *FAILOVER_CLAIMS, *PAPER_CLAIMS[1:4], FIO_CLAIM, *PAPER_CLAIMS[4:], FINAL_FIO_CLAIM,
               *SAFETY_CLAIMS)
"""The paper's experiment (a controller killed) as the drill judges it: who took over, then the paper's
claims with fio's beside its md5 checks, then what must hold through any fault."""


@dataclass(frozen=True)
class Judged:
    """What a step found of one claim, before the expectations say whether it was expected: the claim,
    whether it held and the evidence; by keyword, the reason it did not hold (by default "not held"), a
    short machine-readable ``detail``, and the ``excuse`` that lets a claim expected to hold go either way."""

    claim: str
    held: bool
    evidence: str
    _: KW_ONLY
    reason: Reason | None = None
    detail: str = ""
    excuse: str = ""


def verdict(claim: str, held: bool, evidence: str, expectation: Expectation, reason: Reason | None = None,
            detail: str = "", excuse: str = "") -> ClaimVerdict:
    """A claim's verdict in the words of CLAIMS; a claim that held has the reason "confirmed", one that did
    not has ``reason`` (by default "not held")."""
    if claim not in CLAIMS:
        raise LabError(f"{claim!r} is not a claim; use one of {', '.join(CLAIMS)}")
    why = Reason.CONFIRMED if held else (reason or Reason.NOT_HELD)
    return ClaimVerdict(claim, held, evidence, expectation, why, CLAIMS[claim], detail, excuse)


def load_expectations(path: Path, stack: str, arbitrator: str, fault: str,
                      claims: tuple[str, ...]) -> dict[str, Expectation]:
    """Read ``[<stack>.<arbitrator>.<fault>]`` of the expectations file: claim -> hold | fail | maybe; every
    claim the fault's scenario checks (``claims``) must be listed, and nothing else."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise LabError(f"expectations file {path} cannot be read ({err}); fix or restore it") from None
    where = f"{stack}.{arbitrator}.{fault}"
    table = data.get(stack, {}).get(arbitrator, {}).get(fault)
    if not isinstance(table, dict):
        raise LabError(f"expectations file {path} has no [{where}] table; add one with a line per claim "
                       f"({', '.join(claims)})")
    expectations: dict[str, Expectation] = {}
    for claim in claims:
        value = table.get(claim)
        if value not in Expectation.__members__.values():
            raise LabError(f"expectations file {path}: [{where}].{claim} is {value!r}; use hold, fail or maybe")
        expectations[claim] = Expectation(value)
    unknown = sorted(set(table) - set(claims))
    if unknown:
        raise LabError(f"expectations file {path}: [{where}].{unknown[0]} is not a claim of {fault}; "
                       f"use one of {', '.join(claims)}")
    return expectations


def claims_table(results: list[ClaimVerdict]) -> Table:
    table = Table("claim", "the paper says", "here", "expected", "verdict", "evidence", title="The paper's claims")
    for result in results:
        here = "[green]reproduced[/]" if result.held else "[yellow]not reproduced[/]"
        verdict = "[green]as expected[/]" if result.expected else "[bold red]UNEXPECTED[/]"
        expectation = str(result.expectation)
        if result.effective_expectation is not result.expectation:
            expectation += f" → {result.effective_expectation} ({result.excuse})"
        words = result.text or CLAIMS.get(result.claim, "")
        table.add_row(escape(result.claim), escape(words), here, escape(expectation), verdict, escape(result.evidence))
    return table
