"""The VirtualBox provider offline, from ``bst up`` to ``bst down``: Vagrant calls, shared media, power,
state, SSH and the first boot's root access, with one-line errors.

VBoxManage is replaced by a recorder, Vagrant and pyvbox by fakes (tests/virtualbox_support.py); nothing
here needs VirtualBox.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from vagrant import Status
from virtualbox_support import (
    BOX,
    PAPER,
    FakeVagrant,
    FakeVBoxManage,
    make_provider,
    medium_info,
    one_line,
    serials_set,
    vm_info,
)

from lab import remote
from lab.errors import LabError
from lab.providers.base import HostState, SshTarget
from lab.providers.virtualbox import VirtualBoxProvider, layout
from lab.providers.virtualbox.firstboot import REMOTE_KEY, REMOTE_SCRIPT, SU_COMMAND, root_access_script
from lab.providers.virtualbox.vboxmanage import VBoxManageError, parse_medium_users

# --- lifecycle -------------------------------------------------------------------------------------


def test_up_prepares_media_and_networks_then_boots_through_vagrant(tmp_path: Path, monkeypatch):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox)
    for host in ("ctrl-a", "ctrl-b"):
        vbox.replies[("showvminfo", provider.vm_name(host))] = vm_info(provider, host)
        vbox.replies[("getextradata", provider.vm_name(host))] = serials_set(host)
    after_boot: list[tuple[str, str]] = []
    monkeypatch.setattr(provider, "ensure_root_access", lambda host: after_boot.append(("root", host)))
    monkeypatch.setattr(provider, "wait_for_ssh", lambda host, timeout=None: after_boot.append(("ssh", host)))
    provider.up()
    created = vbox.commands("createmedium")
    assert [argv[3] for argv in created] == [str(layout.medium_path(provider.lab_dir, d)) for d in PAPER.disks.values()]
    assert all(argv[-2:] == ["--variant", "Fixed"] for argv in created)
    assert len(vbox.commands("modifymedium")) == 8
    assert provider.fake_vagrant.calls == [("box_list",), ("up", None, "virtualbox")]  # type: ignore[attr-defined]
    assert after_boot == [(step, host) for host in PAPER.hosts for step in ("root", "ssh")]
    assert provider.key_path.exists() and Path(f"{provider.key_path}.pub").exists()


def test_prepare_twice_creates_each_medium_once(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox)
    provider.prepare()
    provider.prepare()
    assert len(vbox.commands("createmedium")) == len(PAPER.disks)


def test_storage_missing_after_boot_is_one_clear_error(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox)
    vbox.replies[("showvminfo", "beast-ctrl-a")] = vm_info(provider, "ctrl-a").replace(
        f'"SAS Controller-1-0"="{layout.medium_path(provider.lab_dir, PAPER.disks["f01"])}"',
        '"SAS Controller-1-0"="none"')
    with pytest.raises(LabError) as err:
        provider.verify_storage("ctrl-a")
    assert one_line(err).startswith("ctrl-a lacks shared disk f01 on SAS Controller port 1 (found none)")


def test_vagrant_gets_the_topology_lab_dir_and_python(tmp_path: Path):
    env = make_provider(tmp_path).vagrant_env()
    assert env["BEAST_TOPOLOGY"] == str(Path(PAPER.source).resolve())
    assert env["BEAST_LAB_DIR"] == str((tmp_path / "lab").resolve())
    assert env["BEAST_BOX"] == BOX


def created_media(provider: VirtualBoxProvider) -> list[Path]:
    paths = [layout.medium_path(provider.lab_dir, disk) for disk in PAPER.disks.values()]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        path.touch()
    return paths


def test_down_detaches_shared_disks_before_destroy_then_deletes_the_media(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox)
    paths = created_media(provider)
    for path in paths:
        vbox.replies[("showmediuminfo", "disk", str(path))] = medium_info(
            path, ("beast-ctrl-a", "5b1e0a4c-0000-4000-8000-000000000001"),
            ("beast-ctrl-b", "5b1e0a4c-0000-4000-8000-000000000002"))
    vbox.replies[("showvminfo", "beast-ctrl-a")] = vm_info(provider, "ctrl-a", "running")
    vbox.replies[("showvminfo", "beast-ctrl-b")] = VBoxManageError(
        "`VBoxManage showvminfo beast-ctrl-b` failed: VBoxManage: error: Could not find a registered machine named "
        "'beast-ctrl-b'")
    provider.down()
    later = [argv for argv in vbox.calls if argv[0] != "showmediuminfo"]
    assert later == [
        ["showvminfo", "beast-ctrl-a", "--machinereadable"],
        ["controlvm", "beast-ctrl-a", "poweroff"],
        ["showvminfo", "beast-ctrl-a", "--machinereadable"],
        *layout.detach_commands(PAPER, PAPER.hosts["ctrl-a"], "beast-ctrl-a"),
        ["showvminfo", "beast-ctrl-b", "--machinereadable"],
        *[["closemedium", "disk", str(path), "--delete"] for path in paths],
    ]
    assert provider.fake_vagrant.calls == [("destroy", None)]  # type: ignore[attr-defined]


def test_down_refuses_while_a_vm_of_another_lab_uses_a_shared_disk(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox)
    paths = created_media(provider)
    vbox.replies[("showmediuminfo", "disk", str(paths[2]))] = medium_info(
        paths[2], ("beast-ctrl-a", "5b1e0a4c-0000-4000-8000-000000000001"),
        ("zfs-playground", "9d0c7a51-1111-4111-8111-111111111111"))
    with pytest.raises(LabError) as err:
        provider.down()
    message = one_line(err)
    assert message.startswith(f"shared disk d10 ({paths[2]}) is still used by VM zfs-playground "
                              "(9d0c7a51-1111-4111-8111-111111111111), which is not part of lab beast")
    assert not any(argv[0] in ("controlvm", "storageattach", "closemedium") for argv in vbox.calls)
    assert provider.fake_vagrant.calls == []  # type: ignore[attr-defined]
    assert all(path.exists() for path in paths)


def test_medium_users_are_read_from_every_line_of_the_field(tmp_path: Path):
    users = parse_medium_users(medium_info(tmp_path / "d00.vdi", ("beast-ctrl-a", "aa-1"), ("beast-ctrl-b", "bb-2")))
    assert [(u.vm, u.uuid) for u in users] == [("beast-ctrl-a", "aa-1"), ("beast-ctrl-b", "bb-2")]
    assert parse_medium_users(medium_info(tmp_path / "d00.vdi")) == []


# --- power, state and SSH --------------------------------------------------------------------------


def test_power_off_pause_resume_without_the_sdk_use_controlvm(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox)
    provider.power_off("ctrl-a")
    provider.pause("ctrl-b")
    provider.resume("ctrl-b")
    assert vbox.calls == [["controlvm", "beast-ctrl-a", "poweroff"], ["controlvm", "beast-ctrl-b", "pause"],
                          ["controlvm", "beast-ctrl-b", "resume"]]
    with pytest.raises(LabError):
        provider.power_off("ctrl-c")


def test_power_off_with_the_sdk_powers_the_console_down(tmp_path: Path):
    events: list[str] = []
    progress = SimpleNamespace(wait_for_completion=lambda timeout: events.append(f"wait {timeout}"))
    console = SimpleNamespace(power_down=lambda: events.append("power_down") or progress)
    session = SimpleNamespace(console=console, unlock_machine=lambda: events.append("unlock"))
    machine = SimpleNamespace(create_session=lambda: session)
    api = SimpleNamespace(find_machine=lambda name: events.append(f"find {name}") or machine)
    vbox = FakeVBoxManage()
    make_provider(tmp_path, vbox, api=api).power_off("ctrl-a")
    assert events == ["find beast-ctrl-a", "power_down", "wait -1", "unlock"]
    assert vbox.calls == []


def test_status_maps_vagrant_states(tmp_path: Path):
    fake = FakeVagrant(statuses=[Status("ctrl-a", "running", "virtualbox"), Status("ctrl-b", "paused", "virtualbox"),
                                 Status("clnt-1", "not_created", "virtualbox")])
    statuses = make_provider(tmp_path, fake_vagrant=fake).status()
    assert [(s.name, s.state, s.ssh_port) for s in statuses] == [
        ("ctrl-a", HostState.RUNNING, 2200), ("ctrl-b", HostState.PAUSED, None), ("clnt-1", HostState.ABSENT, None)]
    assert statuses[1].detail == "beast-ctrl-b: paused"


def test_ssh_target_is_root_on_the_forwarded_port_with_the_lab_key(tmp_path: Path):
    provider = make_provider(tmp_path)
    assert provider.ssh_target("ctrl-a") == SshTarget(port=2200, key_path=provider.key_path, host="127.0.0.1",
                                                      user="root", name="ctrl-a")


def test_ssh_target_refuses_a_non_loopback_vagrant_address(tmp_path: Path):
    fake = FakeVagrant(conf={"HostName": "192.168.55.10", "Port": "22", "User": "vagrant", "IdentityFile": "k"})
    with pytest.raises(LabError) as err:
        make_provider(tmp_path, fake_vagrant=fake).ssh_target("ctrl-a")
    assert "not a loopback forwarded port" in one_line(err)


def test_vagrant_failure_is_one_line(tmp_path: Path):
    fake = FakeVagrant()
    fake.destroy = lambda vm_name=None: (_ for _ in ()).throw(subprocess.CalledProcessError(1, ["vagrant"]))
    provider = make_provider(tmp_path, fake_vagrant=fake)
    with pytest.raises(LabError) as err:
        provider.down()
    assert one_line(err).startswith("`vagrant destroy` failed (exit 1); run `vagrant destroy` in ")


FIRST_BOOT_DONE = ("Password:\r\nbeast-firstboot: setup=first sentinel=absent reboot=none boottime=1459468800 "
                   "rootdir=1459468700 now=1459468900\r\n")
"""The root setup's status line on a VM whose first boot ended in an earlier boot (/ older than the boot)."""


class FakeConnection:
    def __init__(self, exited: int = 0, stdout: str = FIRST_BOOT_DONE):
        self.puts: list[tuple[str, str]] = []
        self.runs: list[tuple[str, dict]] = []
        self.closed = False
        self.result = SimpleNamespace(exited=exited, stdout=stdout, stderr="")

    def put(self, local: io.StringIO, remote_path: str) -> None:
        self.puts.append((local.getvalue(), remote_path))

    def run(self, command: str, **kwargs):
        self.runs.append((command, kwargs))
        return self.result

    def close(self) -> None:
        self.closed = True


def test_root_access_goes_through_su_with_the_password_on_a_pty(tmp_path: Path, monkeypatch):
    conn = FakeConnection()
    targets: list[SshTarget] = []
    monkeypatch.setattr(remote, "connect", lambda target, timeout=10.0: targets.append(target) or conn)
    provider = make_provider(tmp_path)
    provider.ensure_root_access("ctrl-a")
    assert targets == [SshTarget(port=2200, key_path=Path("/lab/.vagrant/machines/ctrl-a/virtualbox/private_key"),
                                 user="vagrant", name="ctrl-a")]
    public_key = Path(f"{provider.key_path}.pub").read_text()
    assert conn.puts == [(public_key, REMOTE_KEY), (root_access_script(["em0", "em1"]), REMOTE_SCRIPT)]
    command, options = conn.runs[0]
    assert command == SU_COMMAND == "su -m root -c 'sh /tmp/beast-root-access.sh'"
    assert options["pty"] is True and options["warn"] is True
    (responder,) = options["watchers"]
    assert responder.pattern == "Password:" and responder.response == "vagrant\n"
    assert conn.closed
    assert "PermitRootLogin without-password" in root_access_script([])
    assert provider.first_boot["ctrl-a"].reboot_grace_left() == 0


def test_root_access_failure_names_the_password_setting(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(remote, "connect", lambda target, timeout=10.0: FakeConnection(1, "Password:\r\nsu: Sorry\r\n"))
    with pytest.raises(LabError) as err:
        make_provider(tmp_path).ensure_root_access("ctrl-b")
    assert one_line(err).startswith("ctrl-b: `su -m root -c 'sh /tmp/beast-root-access.sh'` as vagrant exited 1 "
                                    "(su: Sorry)")


def test_wait_for_ssh_names_the_console_log(tmp_path: Path, monkeypatch):
    def refuse(target, timeout=10.0):
        raise remote.RemoteError("cannot SSH to ctrl-a")

    monkeypatch.setattr(remote, "connect", refuse)
    provider = make_provider(tmp_path)
    with pytest.raises(LabError) as err:
        provider.wait_for_ssh("ctrl-a", timeout=0)
    assert one_line(err).endswith(f"see its console log {tmp_path}/lab/ctrl-a.console.log")
