"""pyvbox against a VirtualBox it was not generated for: every call falls back to VBoxManage.

pyvbox 1.3 is generated for VirtualBox 6.1.16 (virtualbox/library.py ``vbox_version``). Its calls fail
in ways with no common base class (virtualbox/library_base.py): ``Interface._search_attr`` raises
``AttributeError("Failed to find attribute <name> in <object>")``, ``_call_method`` turns a COM error
into a ``VBoxError`` subclass whose ``str`` is ``0x<code> (<message>)``, and ``Enum.__init__`` raises
``ValueError("Can not find enumeration where value=<n>")`` for a value newer than the library. The fakes
below raise exactly those, at the call the issue names (find_machine, the session, power_down).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from lab.providers.virtualbox import VirtualBoxProvider
from lab.providers.virtualbox.provider import load_vbox_api
from lab.topology import load_topology

PAPER = load_topology()


class VBoxError(Exception):
    """pyvbox's VBoxError: ``value`` and ``msg`` set by _call_method, printed as ``0x%x (%s)``."""

    value = -1
    msg = ""

    def __str__(self):
        return f"0x{self.value:x} ({self.msg})"


class VBoxErrorInvalidObjectState(VBoxError):
    value = 0x80BB0007


def locked_error() -> VBoxError:
    err = VBoxErrorInvalidObjectState()
    err.msg = "The machine 'beast-ctrl-a' is already locked by a session (or being locked or unlocked)"
    return err


class StateVBoxManage:
    """VBoxManage whose showvminfo reports ``state`` and whose controlvm poweroff turns it off."""

    def __init__(self, state: str = "running"):
        self.state = state
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == "showvminfo":
            return f'name="{argv[1]}"\nVMState="{self.state}"\n'
        if argv[:1] == ["controlvm"] and argv[2] == "poweroff":
            self.state = "poweroff"
        return ""


def pyvbox_module(find_machine) -> ModuleType:
    module = ModuleType("virtualbox")
    module.VirtualBox = lambda: SimpleNamespace(find_machine=find_machine)  # type: ignore[attr-defined]
    return module


def provider(tmp_path: Path, vbox: StateVBoxManage, monkeypatch: pytest.MonkeyPatch, find_machine):
    monkeypatch.setitem(sys.modules, "virtualbox", pyvbox_module(find_machine))
    return VirtualBoxProvider(PAPER, tmp_path / "lab", vboxmanage=vbox, vbox_api_loader=load_vbox_api,
                              host_platform="linux")


def test_find_machine_missing_in_the_sdk_falls_back_to_controlvm(tmp_path: Path, monkeypatch):
    def find_machine(name):
        raise AttributeError("Failed to find attribute findMachine in <virtualbox.library_ext.vbox.IVirtualBox>")

    vbox = StateVBoxManage()
    p = provider(tmp_path, vbox, monkeypatch, find_machine)
    p.power_off("ctrl-a")
    assert vbox.calls[-1] == ["controlvm", "beast-ctrl-a", "poweroff"] and vbox.state == "poweroff"
    assert p.pyvbox_failure.startswith("AttributeError: Failed to find attribute findMachine")


def test_a_refused_session_falls_back_to_controlvm(tmp_path: Path, monkeypatch):
    def create_session():
        raise locked_error()

    vbox = StateVBoxManage()
    p = provider(tmp_path, vbox, monkeypatch, lambda name: SimpleNamespace(create_session=create_session))
    p.power_off("ctrl-a")
    assert vbox.calls[-1] == ["controlvm", "beast-ctrl-a", "poweroff"]
    assert p.pyvbox_failure == ("VBoxErrorInvalidObjectState: 0x80bb0007 (The machine 'beast-ctrl-a' is already "
                                "locked by a session (or being locked or unlocked))")


def test_power_down_that_fails_after_the_vm_went_off_is_not_repeated(tmp_path: Path, monkeypatch):
    vbox = StateVBoxManage()
    unlocked: list[bool] = []

    def power_down():
        vbox.state = "poweroff"

        def wait_for_completion(timeout):
            raise ValueError("Can not find enumeration where value=21")

        return SimpleNamespace(wait_for_completion=wait_for_completion)

    session = SimpleNamespace(console=SimpleNamespace(power_down=power_down),
                              unlock_machine=lambda: unlocked.append(True))
    p = provider(tmp_path, vbox, monkeypatch, lambda name: SimpleNamespace(create_session=lambda: session))
    p.power_off("ctrl-b")
    assert vbox.calls == [["showvminfo", "beast-ctrl-b", "--machinereadable"]]
    assert unlocked == [True]


def test_a_failing_unlock_does_not_undo_a_power_down(tmp_path: Path, monkeypatch):
    vbox = StateVBoxManage()

    def unlock_machine():
        raise locked_error()

    console = SimpleNamespace(power_down=lambda: SimpleNamespace(wait_for_completion=lambda timeout: None))
    session = SimpleNamespace(console=console, unlock_machine=unlock_machine)
    p = provider(tmp_path, vbox, monkeypatch, lambda name: SimpleNamespace(create_session=lambda: session))
    p.power_off("clnt-1")
    assert vbox.calls == []


def test_pyvbox_refusing_the_installed_virtualbox_at_construction_means_vboxmanage(monkeypatch):
    module = ModuleType("virtualbox")

    def refuse():
        raise OSError("pyvbox built against version 6.1 != installed VirtualBox version 7.0.")

    module.VirtualBox = refuse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "virtualbox", module)
    assert load_vbox_api() is None
