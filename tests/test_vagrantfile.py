"""The top-level Vagrantfile: Vagrant accepts it, and it configures exactly the topology's lab.

`vagrant validate --ignore-provider` needs no VirtualBox. The provider blocks (names, memory, the
storage lines given to vb.customize) are not checked by that, so the Vagrantfile is also loaded
against a recording stand-in for Vagrant (tests/fixtures/virtualbox/vagrant_recorder.rb).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.providers.virtualbox import layout
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[1]
RECORDER = ROOT / "tests" / "fixtures" / "virtualbox" / "vagrant_recorder.rb"


def lab_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BEAST_", "VAGRANT_"))}
    env.update(BEAST_PYTHON=sys.executable, BEAST_LAB_DIR=str(tmp_path / "lab"),
               VAGRANT_DOTFILE_PATH=str(tmp_path / "dotfile"), **extra)
    return env


def test_vagrant_validate_accepts_the_vagrantfile(tmp_path: Path):
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not on PATH: `nox -s tests` unpacks it into .nox/host-tools/bin")
    env = lab_env(tmp_path, VAGRANT_HOME=str(tmp_path / "vagrant.d"), VAGRANT_CHECKPOINT_DISABLE="1")
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully." in done.stdout


def record(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not on PATH: `nox -s tests` unpacks it into .nox/host-tools/bin")
    return subprocess.run(["ruby", str(RECORDER), str(ROOT / "Vagrantfile")], cwd=ROOT, env=lab_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=120)


def machines(tmp_path: Path, **extra: str) -> tuple[dict, dict]:
    """(top-level settings, machine name -> what its define block configured)."""
    done = record(tmp_path, **extra)
    assert done.returncode == 0, done.stderr
    recorded = json.loads(done.stdout)
    vm_calls = recorded["children"]["vm"]["calls"]
    top = {name[:-1]: value for name, value, *_ in vm_calls if name.endswith("=")}
    top["ssh.shell"] = dict(recorded["children"]["ssh"]["calls"])["shell="]
    top["synced_folder"] = [call[1:3] for call in vm_calls if call[0] == "synced_folder"]
    found = {}
    for _, args, _, node in (call for call in vm_calls if call[0] == "define"):
        node_vm = node["children"]["vm"]["calls"]
        provider = next(call for call in node_vm if call[0] == "provider")
        triggers = node["children"]["trigger"]["calls"]
        found[args[0]] = {
            "networks": [(call[1][0], call[2]) for call in node_vm if call[0] == "network"],
            "provider": provider[1][0],
            "settings": {call[0][:-1]: call[1] for call in provider[3]["calls"] if call[0].endswith("=")},
            "customize": [call[1][0] for call in provider[3]["calls"] if call[0] == "customize"],
            "triggers": [(when, args[0], [c[0] for c in trigger["calls"]]) for when, args, _, trigger in triggers],
        }
    return top, found


def test_vagrantfile_sets_the_freebsd_box_quirks(tmp_path: Path):
    top, _ = machines(tmp_path)
    assert top["box"] == "freebsd/FreeBSD-10.3-RELEASE"
    assert top["guest"] == ":freebsd"
    assert top["base_mac"] == "080027D14C66"
    assert top["boot_timeout"] == 300
    assert top["ssh.shell"] == "sh"
    assert top["synced_folder"] == [[[".", "/vagrant"], {"disabled": True}]]


def test_box_comes_from_beast_box(tmp_path: Path):
    top, _ = machines(tmp_path, BEAST_BOX="local/freebsd-10.3")
    assert top["box"] == "local/freebsd-10.3"


def test_vagrantfile_defines_the_topology_hosts_with_paper_networks(tmp_path: Path):
    _, found = machines(tmp_path)
    assert list(found) == ["ctrl-a", "ctrl-b", "clnt-1"]
    private = {"netmask": "255.255.255.0", "auto_config": False, "nic_type": "82540EM"}
    assert found["ctrl-a"]["networks"] == [
        ("private_network", {"ip": "192.168.56.10", **private}),
        ("private_network", {"ip": "192.168.55.10", **private}),
    ]
    assert found["clnt-1"]["networks"] == [("private_network", {"ip": "192.168.55.20", **private})]
    assert found["ctrl-b"]["settings"] == {"name": "beast-ctrl-b", "memory": 2048, "cpus": 1,
                                           "check_guest_additions": False, "functional_vboxsf": False}
    assert found["clnt-1"]["settings"]["memory"] == 512
    assert all(machine["provider"] == "virtualbox" for machine in found.values())


def test_first_boot_customizations_give_the_paper_storage_layout(tmp_path: Path):
    _, found = machines(tmp_path)
    topology = load_topology()
    lab_dir = (tmp_path / "lab").resolve()
    for name in ("ctrl-a", "ctrl-b"):
        host = topology.hosts[name]
        assert found[name]["customize"] == [*layout.machine_commands(host, lab_dir),
                                            *layout.storage_commands(topology, host, lab_dir)]
    assert found["clnt-1"]["customize"] == layout.machine_commands(topology.hosts["clnt-1"], lab_dir)
    assert ["storagectl", ":id", "--name", "SAS Controller", "--add", "sas", "--controller", "LsiLogicSas",
            "--portcount", "4", "--bootable", "off"] in found["ctrl-a"]["customize"]


def test_first_boot_gives_each_sata_disk_its_serial_on_the_vm_itself(tmp_path: Path):
    """``beast-<disk>`` on the disk's AHCI port, set on ``:id`` (the VM Vagrant is creating), before its boot."""
    _, found = machines(tmp_path)
    for name in ("ctrl-a", "ctrl-b"):
        serials = {argv[2]: argv[3] for argv in found[name]["customize"] if argv[0] == "setextradata"}
        assert serials == {f"VBoxInternal/Devices/ahci/0/Config/Port{port}/SerialNumber": f"beast-{disk}"
                           for port, disk in enumerate(("d00", "d01", "d10", "d11"))}
        assert all(argv[1] == ":id" for argv in found[name]["customize"] if argv[0] == "setextradata")
    assert not any(argv[0] == "setextradata" for argv in found["clnt-1"]["customize"])


def test_storage_is_not_attached_again_to_a_created_vm(tmp_path: Path):
    created = tmp_path / "dotfile" / "machines" / "ctrl-a" / "virtualbox" / "id"
    created.parent.mkdir(parents=True)
    created.write_text("5b1e0a4c-0000-4000-8000-000000000001")
    _, found = machines(tmp_path)
    assert not any(argv[0].startswith("storage") or argv[0] == "setextradata" for argv in found["ctrl-a"]["customize"])
    assert any(argv[0] == "storagectl" for argv in found["ctrl-b"]["customize"])


def test_triggers_prepare_before_up_and_detach_before_destroy_on_controllers_only(tmp_path: Path):
    _, found = machines(tmp_path)
    assert found["ctrl-a"]["triggers"] == [("before", ":up", ["info=", "ruby"]),
                                           ("before", ":destroy", ["info=", "ruby"])]
    assert found["clnt-1"]["triggers"] == [("before", ":up", ["info=", "ruby"])]


def test_a_bad_topology_stops_the_vagrantfile_with_the_topology_error(tmp_path: Path):
    done = record(tmp_path, BEAST_TOPOLOGY=str(tmp_path / "missing.toml"))
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("BeaST: `")
    assert f"topology file {tmp_path / 'missing.toml'} does not exist" in message
