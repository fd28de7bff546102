"""Stacks turn a topology into plans. Registered by name; a stack never imports a provider."""

from __future__ import annotations

import importlib

from lab.errors import LabError
from lab.registry import STACKS, require_stack
from lab.stacks.base import Stack


def get_stack(name: str) -> Stack:
    """The stack registered under ``name``."""
    module_name, class_name = STACKS[require_stack(name)].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def stack_name_for(topo_stack: str, option: str | None, provider_name: str | None) -> str:
    """The stack to use: the option, else the topology's, else (``auto``) the provider's natural one.
    An empty option is an unknown stack, not "use the topology's"."""
    name = topo_stack if option is None else option
    if name == "auto":
        name = "freebsd" if provider_name == "virtualbox" else "linux"
    return name


def lab_stack_name(topo_stack: str, option: str | None, provider_name: str | None, recorded: str | None,
                   lab_name: str) -> str:
    """The stack of an existing lab: the option, else the one recorded when the lab was brought up, else the
    topology's. LabError when the option names another stack than the lab's VMs were built for."""
    name = stack_name_for(topo_stack, option if option is not None else recorded, provider_name)
    require_stack(name)
    if recorded and name != recorded:
        raise LabError(f"lab {lab_name} runs the {recorded} stack (chosen at bst up); use --stack {recorded}, "
                       f"or remove the lab with bst down and bring it up again with --stack {name}")
    return name


__all__ = ["STACKS", "Stack", "get_stack", "lab_stack_name", "stack_name_for"]

