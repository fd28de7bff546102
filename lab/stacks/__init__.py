"""Stacks turn a topology into plans. Registered by name; a stack never imports a provider."""

from __future__ import annotations

import importlib

from lab.errors import LabError
from lab.stacks.base import Stack

STACKS: dict[str, str] = {
    "freebsd": "lab.stacks.freebsd:FreeBSDStack",
    "linux": "lab.stacks.linux:LinuxStack",
}


def get_stack(name: str) -> Stack:
    """The stack registered under ``name``."""
    if name not in STACKS:
        raise LabError(f"unknown stack '{name}'; use one of {', '.join(STACKS)}")
    module_name, class_name = STACKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def stack_name_for(topo_stack: str, option: str | None, provider_name: str | None) -> str:
    """The stack to use: the option, else the topology's, else (``auto``) the provider's natural one.
    An empty option is an unknown stack, not "use the topology's"."""
    name = topo_stack if option is None else option
    if name == "auto":
        name = "freebsd" if provider_name == "virtualbox" else "linux"
    return name


__all__ = ["STACKS", "Stack", "get_stack", "stack_name_for"]

