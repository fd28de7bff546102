"""VirtualBox's session lock after a power-off, against a VBoxManage stand-in that keeps the lock.

The stand-in (tests/fixtures/virtualbox/fakevbox.py) is a real executable run through the provider's own
``VBoxManage`` runner, so exit codes and stderr are read as they would be from VirtualBox: after
``controlvm poweroff`` the VM's session stays locked for ``lock_seconds`` and ``storageattach`` /
``unregistervm`` fail with VirtualBox's messages. ``bst down`` and the Vagrantfile's destroy trigger
(``python3 -m lab.providers.virtualbox release-disks HOST``) must both get through it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from virtualbox_support import refusal

from lab.providers.virtualbox import VirtualBoxProvider, layout
from lab.providers.virtualbox.sessions import SessionWaiter
from lab.providers.virtualbox.vboxmanage import VBoxManage, VBoxManageError
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[1]
FAKEVBOX = ROOT / "tests" / "fixtures" / "virtualbox" / "fakevbox.py"
PAPER = load_topology()


class FakeVirtualBox:
    """The stand-in's state file and a ``VBoxManage`` on a private PATH directory."""

    def __init__(self, tmp_path: Path, lab_dir: Path, lock_seconds: float, **state):
        self.state_path = tmp_path / "fakevbox.json"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.program = self.bin / "VBoxManage"
        self.program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKEVBOX}" "$@"\n')
        self.program.chmod(0o755)
        vms = {}
        for index, host in enumerate(PAPER.hosts.values()):
            ports = {"IDE Controller-0-0": f"/vms/{host.name}/box-disk1.vmdk"}
            for disk in layout.shared_disks(PAPER, host):
                slot = f"{layout.CONTROLLERS[disk.bus][0]}-{layout.disk_port(PAPER, disk)}-0"
                ports[slot] = str(layout.medium_path(lab_dir, disk))
            vms[layout.vm_name(PAPER, host.name)] = {"uuid": f"5b1e0a4c-0000-4000-8000-00000000000{index}",
                                                    "state": "running", "ports": ports}
        (lab_dir / "disks").mkdir(parents=True)
        for disk in PAPER.disks.values():
            layout.medium_path(lab_dir, disk).touch()
        self.write({"version": "7.0.10_Debianr158379", "lock_seconds": lock_seconds, "vms": vms, **state})

    def env(self) -> dict[str, str]:
        return {**os.environ, "FAKEVBOX_STATE": str(self.state_path), "PATH": f"{self.bin}:{os.environ['PATH']}"}

    def read(self) -> dict:
        return json.loads(self.state_path.read_text())

    def write(self, state: dict) -> None:
        self.state_path.write_text(json.dumps(state))

    def runner(self, monkeypatch: pytest.MonkeyPatch) -> VBoxManage:
        monkeypatch.setenv("FAKEVBOX_STATE", str(self.state_path))
        return VBoxManage(program=str(self.program))


class VagrantDestroy:
    """What `vagrant destroy` does to each VM (Vagrant's VirtualBox driver): a forced halt of a running VM
    (``controlvm poweroff``, retryable), 1 s of sleep, then ``unregistervm --delete`` retryable: 3 tries,
    1 s apart. Records which media still existed when it was done."""

    def __init__(self, run: VBoxManage, fake: FakeVirtualBox, lab_dir: Path):
        self.run, self.fake, self.lab_dir = run, fake, lab_dir
        self.media_after: list[bool] = []

    def retryable(self, argv: list[str]) -> None:
        for attempt in range(3):
            try:
                self.run(argv)
                return
            except VBoxManageError:
                if attempt == 2:
                    raise
                time.sleep(1)

    def destroy(self, vm_name=None) -> None:
        for vm, info in self.fake.read()["vms"].items():
            if info["state"] == "running":
                self.retryable(["controlvm", vm, "poweroff"])
                time.sleep(1)
            self.retryable(["unregistervm", vm, "--delete"])
        self.media_after = [layout.medium_path(self.lab_dir, d).exists() for d in PAPER.disks.values()]


def provider_on(fake: FakeVirtualBox, lab_dir: Path, monkeypatch: pytest.MonkeyPatch, vagrant=None):
    provider = VirtualBoxProvider(PAPER, lab_dir, vboxmanage=fake.runner(monkeypatch),
                                  vagrant_factory=lambda root, env: vagrant, vbox_api_loader=lambda: None)
    if hasattr(provider, "sessions"):
        provider.sessions.poll = 0.05
    return provider


def shared_ports(vm: dict) -> dict[str, str]:
    return {slot: medium for slot, medium in vm["ports"].items() if not slot.startswith("IDE")}


def test_release_disks_waits_out_the_lock_that_follows_a_power_off(tmp_path: Path, monkeypatch):
    lab_dir = tmp_path / "lab"
    fake = FakeVirtualBox(tmp_path, lab_dir, lock_seconds=1.5)
    provider = provider_on(fake, lab_dir, monkeypatch)
    provider.release_disks("ctrl-a")
    state = fake.read()
    vm = state["vms"]["beast-ctrl-a"]
    assert vm["state"] == "poweroff"
    assert set(shared_ports(vm).values()) == {"none"} and len(shared_ports(vm)) == 8
    verbs = [call[0] for call in state["calls"]]
    assert verbs[:2] == ["showvminfo", "controlvm"] and verbs[-8:] == ["storageattach"] * 8
    assert verbs.count("showvminfo") >= 3, "the provider polled the VM until its session was released"


def test_a_lock_that_never_clears_ends_in_one_line(tmp_path: Path, monkeypatch):
    lab_dir = tmp_path / "lab"
    fake = FakeVirtualBox(tmp_path, lab_dir, lock_seconds=3600)
    provider = provider_on(fake, lab_dir, monkeypatch)
    if hasattr(provider, "sessions"):
        provider.sessions.timeout = 0.3
    message = refusal(provider.release_disks, "ctrl-b")
    assert re.match(r"VM beast-ctrl-b is still locked by a VirtualBox session after \d+ s "
                    r"\(VMState poweroff, session headless\); close whatever holds it", message), message
    assert not any(call[0] == "storageattach" for call in fake.read()["calls"])


def test_a_refused_call_is_retried_until_the_session_is_released(tmp_path: Path, monkeypatch):
    lab_dir = tmp_path / "lab"
    fake = FakeVirtualBox(tmp_path, lab_dir, lock_seconds=1.5)
    run = fake.runner(monkeypatch)
    run(["controlvm", "beast-ctrl-a", "poweroff"])
    detach = layout.detach_commands(PAPER, PAPER.hosts["ctrl-a"], "beast-ctrl-a")[0]
    with pytest.raises(VBoxManageError) as refused:
        run(detach)
    assert str(refused.value) == (f"`VBoxManage {' '.join(detach)}` failed: VBoxManage: error: The machine "
                                  "'beast-ctrl-a' is already locked for a session (or being unlocked)")
    SessionWaiter(run, poll=0.05).run_unlocked("VM beast-ctrl-a", detach)
    calls = fake.read()["calls"]
    assert calls.count(detach) >= 3 and fake.read()["vms"]["beast-ctrl-a"]["ports"]["SATA Controller-0-0"] == "none"


def test_bst_down_detaches_then_destroys_then_deletes_through_the_lock(tmp_path: Path, monkeypatch):
    lab_dir = tmp_path / "lab"
    fake = FakeVirtualBox(tmp_path, lab_dir, lock_seconds=0.5)
    run = fake.runner(monkeypatch)
    vagrant = VagrantDestroy(run, fake, lab_dir)
    provider = provider_on(fake, lab_dir, monkeypatch, vagrant)
    monkeypatch.setattr(provider, "vagrant_env", lambda: {})
    provider.down()
    assert fake.read()["vms"] == {}
    assert vagrant.media_after == [True] * len(PAPER.disks), "Vagrant's unregistervm --delete kept the shared disks"
    assert not any(layout.medium_path(lab_dir, d).exists() for d in PAPER.disks.values())
    closed = [call[2] for call in fake.read()["calls"] if call[0] == "closemedium"]
    assert closed == [str(layout.medium_path(lab_dir, d)) for d in PAPER.disks.values()]


def test_the_vagrantfile_destroy_trigger_survives_the_lock(tmp_path: Path):
    lab_dir = tmp_path / "lab"
    fake = FakeVirtualBox(tmp_path, lab_dir, lock_seconds=0.8)
    env = {**fake.env(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "lab.providers.virtualbox", "--lab-dir", str(lab_dir),
                           "release-disks", "ctrl-b"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    vm = fake.read()["vms"]["beast-ctrl-b"]
    assert set(shared_ports(vm).values()) == {"none"}


def test_start_waits_for_the_session_of_a_vm_just_killed(tmp_path: Path, monkeypatch):
    lab_dir = tmp_path / "lab"
    fake = FakeVirtualBox(tmp_path, lab_dir, lock_seconds=4.0)
    run = fake.runner(monkeypatch)

    class VagrantUp:
        """`vagrant up` of a halted VM: its customize lines run retryable (3 tries, 1 s apart)."""

        def up(self, vm_name=None, provider=None):
            VagrantDestroy(run, fake, lab_dir).retryable(["modifyvm", layout.vm_name(PAPER, vm_name),
                                                          "--nictype1", "virtio"])

    provider = provider_on(fake, lab_dir, monkeypatch, VagrantUp())
    monkeypatch.setattr(provider, "vagrant_env", lambda: {})
    monkeypatch.setattr(provider, "ensure_root_access", lambda host: None)
    monkeypatch.setattr(provider, "wait_for_ssh", lambda host, timeout=None: None)
    provider.power_off("clnt-1")
    provider.start("clnt-1")
    assert fake.read()["calls"][-1] == ["modifyvm", "beast-clnt-1", "--nictype1", "virtio"]
