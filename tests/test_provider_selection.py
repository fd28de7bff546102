"""Which provider a lab uses and why; the registry; the host tools doctor reports."""

from __future__ import annotations

import dataclasses

import pytest

import lab.providers as providers
from lab.errors import LabError, MissingToolError
from lab.providers import PROVIDERS, doctor, provider_class, require_tools, select_provider
from lab.providers.base import Provider
from lab.providers.qemu import QemuProvider
from lab.topology import load_topology


def with_provider(name: str):
    topo = load_topology()
    return dataclasses.replace(topo, lab=dataclasses.replace(topo.lab, provider=name))


def which_only(*present: str):
    return lambda program: f"/usr/bin/{program}" if program in present else None


def test_auto_picks_virtualbox_when_vboxmanage_and_vagrant_exist(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(providers.shutil, "which", which_only("VBoxManage", "vagrant"))
    name, reason = select_provider(load_topology())
    assert name == "virtualbox"
    assert reason == "provider auto chose virtualbox: VBoxManage and vagrant are on PATH."


@pytest.mark.parametrize(
    "present, missing",
    [
        ((), "VBoxManage and vagrant"),
        (("VBoxManage",), "vagrant"),
        (("vagrant",), "VBoxManage"),
    ],
)
def test_auto_picks_qemu_otherwise_and_says_what_is_missing(monkeypatch, present, missing):
    monkeypatch.setattr(providers.shutil, "which", which_only(*present))
    name, reason = select_provider(load_topology())
    assert name == "qemu"
    assert reason == f"provider auto chose qemu: {missing} not on PATH, so VirtualBox cannot be used."


def test_topology_choice_wins_over_detection(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(providers.shutil, "which", which_only("VBoxManage", "vagrant"))
    name, reason = select_provider(with_provider("qemu"))
    assert name == "qemu" and "set in the topology" in reason


def test_override_wins_over_topology(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(providers.shutil, "which", which_only())
    assert select_provider(with_provider("qemu"), "virtualbox") == (
        "virtualbox",
        "provider virtualbox was asked for on the command line.",
    )


def test_override_auto_detects_even_if_the_topology_names_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(providers.shutil, "which", which_only())
    assert select_provider(with_provider("virtualbox"), "auto")[0] == "qemu"


def test_unknown_override_is_refused():
    with pytest.raises(LabError, match="unknown provider 'docker'; choose one of: auto, qemu, virtualbox"):
        select_provider(load_topology(), "docker")


def test_registry_maps_names_to_classes():
    assert PROVIDERS == {
        "qemu": "lab.providers.qemu:QemuProvider",
        "virtualbox": "lab.providers.virtualbox:VirtualBoxProvider",
    }
    assert provider_class("qemu") is QemuProvider
    assert issubclass(QemuProvider, Provider)


def test_a_provider_module_not_written_yet_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(PROVIDERS, "virtualbox", "lab.providers.not_there:VirtualBoxProvider")
    with pytest.raises(LabError, match="the virtualbox provider is not available in this version"):
        provider_class("virtualbox")


def test_doctor_lists_missing_tools_with_their_packages(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(providers.shutil, "which", which_only("qemu-img", "ssh-keygen"))
    missing = doctor("qemu")
    assert [(m.program, m.package) for m in missing] == [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("vde_switch", "vde2"),
        ("debootstrap", "debootstrap"),
    ]
    assert missing[0].install_command == "apt-get install -y qemu-system-x86"
    with pytest.raises(MissingToolError) as err:
        require_tools("qemu")
    assert str(err.value).endswith("install them with: apt-get install -y qemu-system-x86 vde2 debootstrap")


def test_doctor_is_empty_when_everything_is_there(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(providers.shutil, "which", lambda program: f"/usr/bin/{program}")
    assert doctor("qemu") == []
    require_tools("qemu")
