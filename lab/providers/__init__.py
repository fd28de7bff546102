"""Providers by name, which one a lab uses, and which host tools are missing for it."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.errors import LabError, MissingToolError
from lab.providers.base import HostState, HostStatus, Provider
from lab.registry import PROVIDERS
from lab.topology import Topology

if TYPE_CHECKING:
    from lab.stacks.hardware import GuestHardware

VIRTUALBOX_TOOLS = ("VBoxManage", "vagrant")
VIRTUALBOX_PACKAGES = {"VBoxManage": "virtualbox", "vagrant": "vagrant"}


@dataclass(frozen=True)
class HostTool:
    program: str
    package: str
    why: str


QEMU_TOOLS = (
    HostTool("qemu-system-x86_64", "qemu-system-x86", "runs the VMs"),
    HostTool("qemu-img", "qemu-utils", "creates disk overlays"),
    HostTool("vde_switch", "vde2", "switches the private and public networks"),
    HostTool("ssh-keygen", "openssh-client", "makes the lab's SSH key"),
    HostTool("debootstrap", "debootstrap", "builds the Debian guest image"),
)


@dataclass(frozen=True)
class MissingTool:
    program: str
    package: str
    why: str

    @property
    def install_command(self) -> str:
        return f"apt-get install -y {self.package}"


def provider_class(name: str) -> type[Provider]:
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise LabError(f"unknown provider {name!r}; choose one of: auto, {', '.join(PROVIDERS)}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise LabError(f"the {name} provider is not available in this version; use --provider qemu") from None
    return getattr(module, class_name)


def select_provider(topology: Topology, override: str | None = None) -> tuple[str, str]:
    """(provider name, a sentence saying why) from ``override`` or the topology's ``lab.provider``."""
    if override is not None and override != "auto":
        if override not in PROVIDERS:
            raise LabError(f"unknown provider {override!r}; choose one of: auto, {', '.join(PROVIDERS)}")
        return override, f"provider {override} was asked for on the command line."
    wanted = topology.lab.provider
    if wanted != "auto" and not override:
        return wanted, f"provider {wanted} is set in the topology ({topology.source or 'lab.provider'})."
    missing = [tool for tool in VIRTUALBOX_TOOLS if shutil.which(tool) is None]
    if not missing:
        return "virtualbox", "provider auto chose virtualbox: VBoxManage and vagrant are on PATH."
    return (
        "qemu",
        f"provider auto chose qemu: {' and '.join(missing)} not on PATH, so VirtualBox cannot be used.",
    )


def create_provider(
    topology: Topology, override: str | None = None, hardware: GuestHardware | None = None, **kwargs: Any
) -> Provider:
    """The chosen provider for ``topology``; ``hardware``: the devices the stack's guests expect
    (``Stack.hardware``), None for the Linux stack's."""
    name, _ = select_provider(topology, override)
    if topology.lab.arbitrator == "cluster" and name != "qemu":
        raise LabError(f'arbitrator = "cluster" needs the qemu provider, not {name}: the cluster fences through '
                       "the lab's fence listener, which only qemu VMs are wired to; use --provider qemu or set "
                       f"[lab] arbitrator to \"paper\" or \"takeover\" in {topology.source or 'the topology'}")
    if name == "virtualbox":
        from lab.topology.load import check_virtualbox_addresses

        check_virtualbox_addresses(topology)
    provider = provider_class(name)(topology, **kwargs)
    provider.hardware = hardware
    return provider


def doctor(provider: str = "qemu") -> list[MissingTool]:
    """Host programs the provider needs that are not installed, each with its apt package."""
    if provider not in PROVIDERS:
        raise LabError(f"unknown provider {provider!r}; choose one of: {', '.join(PROVIDERS)}")
    if provider == "virtualbox":
        return [
            MissingTool(tool, VIRTUALBOX_PACKAGES[tool], "runs the VirtualBox lab")
            for tool in VIRTUALBOX_TOOLS
            if shutil.which(tool) is None
        ]
    return [MissingTool(t.program, t.package, t.why) for t in QEMU_TOOLS if shutil.which(t.program) is None]


def require_tools(provider: str = "qemu") -> None:
    """Raise one MissingToolError listing every missing program and the apt command that installs all."""
    missing = doctor(provider)
    if missing:
        programs = ", ".join(m.program for m in missing)
        packages = " ".join(dict.fromkeys(m.package for m in missing))
        raise MissingToolError(
            f"missing host tools: {programs}; install them with: apt-get install -y {packages}"
        )


__all__ = [
    "PROVIDERS",
    "HostState",
    "HostStatus",
    "MissingTool",
    "Provider",
    "create_provider",
    "doctor",
    "provider_class",
    "require_tools",
    "select_provider",
]
