"""Names only, at the bottom of the house: the stacks, providers and arbitrator modes a lab may name.

Nothing here is imported: a stack's or provider's class is written as ``"module:Class"`` and only
`lab.stacks.get_stack` and `lab.providers.provider_class` import it, when chosen. The topology checks the
names it reads against these, so the bottom layer knows no one above it (docs/architecture.md)."""

from __future__ import annotations

from lab.errors import LabError

STACKS: dict[str, str] = {
    "freebsd": "lab.stacks.freebsd:FreeBSDStack",
    "linux": "lab.stacks.linux:LinuxStack",
}
"""Stack name -> "module:Class", imported only when chosen (`lab.stacks.get_stack`)."""

PROVIDERS: dict[str, str] = {
    "qemu": "lab.providers.qemu:QemuProvider",
    "virtualbox": "lab.providers.virtualbox:VirtualBoxProvider",
}
"""Provider name -> "module:Class", imported only when chosen (`lab.providers.provider_class`)."""

ARBITRATORS = ("paper", "takeover", "cluster")
"""The topology's ``[lab] arbitrator`` modes."""


def stack_problem(name: str) -> tuple[str, str] | None:
    """What is wrong with ``name`` as a topology's ``[lab] stack`` (``auto`` allowed), else None."""
    if name == "auto" or name in STACKS:
        return None
    return f"'{name}' is not a stack", f"use one of auto, {', '.join(STACKS)}"


def provider_problem(name: str) -> tuple[str, str] | None:
    """What is wrong with ``name`` as a topology's ``[lab] provider`` (``auto`` allowed), else None."""
    if name == "auto" or name in PROVIDERS:
        return None
    return f"'{name}' is not a provider", f"use one of auto, {', '.join(PROVIDERS)}"


def require_stack(name: str) -> str:
    """``name`` when a stack is registered under it; LabError naming the stacks otherwise. The one check
    every command, the drill and `get_stack` make of a stack's name."""
    if name not in STACKS:
        raise LabError(f"unknown stack '{name}'; use one of {', '.join(STACKS)}")
    return name


__all__ = ["ARBITRATORS", "PROVIDERS", "STACKS", "provider_problem", "require_stack", "stack_problem"]
