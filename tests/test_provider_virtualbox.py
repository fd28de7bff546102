"""The VirtualBox provider offline: exact VBoxManage command lines, Vagrant calls, one-line errors.

VBoxManage is replaced by a recorder, Vagrant and pyvbox by fakes; nothing here needs VirtualBox.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from vagrant import Box, Status

from lab import remote
from lab.errors import LabError, MissingToolError
from lab.providers.base import HostState, SshTarget
from lab.providers.virtualbox import VirtualBoxProvider, layout
from lab.providers.virtualbox import __main__ as cli
from lab.providers.virtualbox.firstboot import root_access_script
from lab.providers.virtualbox.provider import REMOTE_KEY, REMOTE_SCRIPT, SU_COMMAND
from lab.providers.virtualbox.vboxmanage import (
    VBoxManage,
    VBoxManageError,
    check_host_only_ranges,
    ensure_host_only_networks,
    parse_host_only_interfaces,
    parse_medium_users,
    parse_version,
)
from lab.topology import load_topology

FIXTURES = Path(__file__).parent / "fixtures" / "virtualbox"
HOSTONLYIFS = (FIXTURES / "hostonlyifs_docker_machine_2624.txt").read_text()
PAPER = load_topology()
BOX = "freebsd/FreeBSD-10.3-RELEASE"
NETWORKS_CONF_LINE = "* 192.168.55.0/24 192.168.56.0/24"


def medium_info(path: Path, *users: tuple[str, str]) -> str:
    """``showmediuminfo`` text (constructed in VBoxManage's layout: further VMs on indented lines)."""
    lines = ["UUID:           0c9a1f0e-3a56-4b7e-9b43-0f3c1d6e2a11", "Parent UUID:    base", "State:          created",
             "Type:           shareable", f"Location:       {path}", "Storage format: VDI",
             "Format variant: fixed default", "Capacity:       256 MBytes", "Size on disk:   256 MBytes",
             "Encryption:     disabled"]
    for index, (vm, uuid) in enumerate(users):
        lines.append(("In use by VMs:  " if index == 0 else "                ") + f"{vm} (UUID: {uuid})")
    return "\n".join(lines) + "\n"


def vm_info(provider: VirtualBoxProvider, host: str, state: str = "running", sata_instance: int = 0) -> str:
    """``showvminfo --machinereadable`` text (constructed, in VBoxManageInfo.cpp's keys): the box disk on IDE,
    shared disks on SATA/SAS; each controller is instance 0 of its bus unless told."""
    lines = [f'name="{provider.vm_name(host)}"', f'VMState="{state}"']
    controllers = [("IDE Controller", "PIIX4", 0), ("SATA Controller", "IntelAhci", sata_instance),
                   ("SAS Controller", "LsiLogicSas", 0)]
    for index, (name, kind, instance) in enumerate(controllers):
        lines += [f'storagecontrollername{index}="{name}"', f'storagecontrollertype{index}="{kind}"',
                  f'storagecontrollerinstance{index}="{instance}"']
    lines += ['"IDE Controller-0-0"="/home/u/VirtualBox VMs/box/freebsd.vmdk"', '"IDE Controller-1-0"="none"']
    for disk in layout.shared_disks(PAPER, PAPER.hosts[host]):
        controller = layout.CONTROLLERS[disk.bus][0]
        lines.append(f'"{controller}-{layout.disk_port(PAPER, disk)}-0"="{layout.medium_path(provider.lab_dir, disk)}"')
    return "\n".join(lines) + "\n"


def serials_set(host: str) -> str:
    """``getextradata <vm> enumerate`` (VBoxManageMisc.cpp's format; constructed) once the SATA serials are set."""
    return "".join(f"Key: {argv[2]}, Value: {argv[3]}\n" for argv in layout.serial_commands(PAPER, PAPER.hosts[host]))


class FakeVBoxManage:
    """Records every argv; answers from ``replies`` (argv prefix -> text or exception), else with ''."""

    def __init__(self, replies: dict[tuple[str, ...], str | Exception] | None = None):
        self.calls: list[list[str]] = []
        self.replies = {("--version",): "7.0.10_Debianr158379\n", ("list", "hostonlyifs"): HOSTONLYIFS,
                        ("hostonlyif", "create"): "Interface 'vboxnet1' was successfully created\n",
                        **(replies or {})}

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["createmedium", "disk"]:
            Path(argv[3]).touch()
        for prefix in sorted(self.replies, key=len, reverse=True):
            if tuple(argv[: len(prefix)]) == prefix:
                reply = self.replies[prefix]
                if isinstance(reply, Exception):
                    raise reply
                return reply
        return ""

    def commands(self, verb: str) -> list[list[str]]:
        return [argv for argv in self.calls if argv[0] == verb]


class FakeVagrant:
    def __init__(self, boxes=None, statuses=None, conf=None):
        self.calls: list[tuple] = []
        self.boxes = [Box(BOX, "virtualbox", "2016.03.31")] if boxes is None else boxes
        self.statuses = statuses or []
        self.conf_reply = conf or {"HostName": "127.0.0.1", "User": "vagrant", "Port": "2200",
                                   "IdentityFile": "/lab/.vagrant/machines/ctrl-a/virtualbox/private_key"}

    def box_list(self):
        self.calls.append(("box_list",))
        return self.boxes

    def version(self):
        return "2.3.4"

    def up(self, vm_name=None, provider=None):
        self.calls.append(("up", vm_name, provider))

    def destroy(self, vm_name=None):
        self.calls.append(("destroy", vm_name))

    def status(self, vm_name=None):
        self.calls.append(("status", vm_name))
        return self.statuses

    def conf(self, ssh_config=None, vm_name=None):
        self.calls.append(("conf", vm_name))
        return self.conf_reply


def make_provider(tmp_path: Path, vbox: FakeVBoxManage | None = None, fake_vagrant: FakeVagrant | None = None,
                  conf_text: str | None = NETWORKS_CONF_LINE + "\n", api=None) -> VirtualBoxProvider:
    conf = tmp_path / "networks.conf"
    if conf_text is not None:
        conf.write_text(conf_text)
    fake_vagrant = fake_vagrant or FakeVagrant()
    provider = VirtualBoxProvider(
        PAPER, tmp_path / "lab", vboxmanage=vbox or FakeVBoxManage(),
        vagrant_factory=lambda root, env: fake_vagrant, vbox_api_loader=lambda: api, networks_conf=conf,
        host_platform="linux",
    )
    provider.fake_vagrant = fake_vagrant  # type: ignore[attr-defined]
    return provider


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --- command lines ---------------------------------------------------------------------------------


def test_media_are_fixed_size_then_shareable(tmp_path: Path):
    d00, f00 = PAPER.disks["d00"], PAPER.disks["f00"]
    assert layout.create_medium_commands(d00, tmp_path / "d00.vdi") == [
        ["createmedium", "disk", "--filename", f"{tmp_path}/d00.vdi", "--size", "256", "--variant", "Fixed"],
        ["modifymedium", "disk", f"{tmp_path}/d00.vdi", "--type", "shareable"],
    ]
    assert layout.create_medium_commands(f00, tmp_path / "f00.vdi")[0][5] == "128"


def test_controller_storage_gives_paper_device_names(tmp_path: Path):
    lab = tmp_path / "lab"
    hdd = ["--device", "0", "--type", "hdd"]

    def attach(controller: str, port: int, disk: str, *flags: str) -> list[str]:
        return ["storageattach", "beast-ctrl-a", "--storagectl", controller, "--port", str(port), *hdd,
                "--medium", f"{lab}/disks/{disk}.vdi", "--mtype", "shareable", *flags]

    assert layout.storage_commands(PAPER, PAPER.hosts["ctrl-a"], lab, "beast-ctrl-a") == [
        ["storagectl", "beast-ctrl-a", "--name", "SATA Controller", "--add", "sata", "--controller", "IntelAhci",
         "--portcount", "4", "--bootable", "off"],
        ["storagectl", "beast-ctrl-a", "--name", "SAS Controller", "--add", "sas", "--controller", "LsiLogicSas",
         "--portcount", "4", "--bootable", "off"],
        attach("SATA Controller", 0, "d00"),
        attach("SATA Controller", 1, "d01"),
        attach("SATA Controller", 2, "d10"),
        attach("SATA Controller", 3, "d11"),
        attach("SAS Controller", 0, "f00", "--nonrotational", "on"),
        attach("SAS Controller", 1, "f01", "--nonrotational", "on"),
        attach("SAS Controller", 2, "f10", "--nonrotational", "on"),
        attach("SAS Controller", 3, "f11", "--nonrotational", "on"),
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port0/SerialNumber", "beast-d00"],
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port1/SerialNumber", "beast-d01"],
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port2/SerialNumber", "beast-d10"],
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port3/SerialNumber", "beast-d11"],
    ]


def test_both_controllers_get_the_same_disks_and_the_client_none(tmp_path: Path):
    a = layout.storage_commands(PAPER, PAPER.hosts["ctrl-a"], tmp_path)
    b = layout.storage_commands(PAPER, PAPER.hosts["ctrl-b"], tmp_path)
    assert a == b and a[0][1] == layout.VM_PLACEHOLDER
    assert layout.storage_commands(PAPER, PAPER.hosts["clnt-1"], tmp_path) == []


def test_detach_empties_every_shared_port():
    assert layout.detach_commands(PAPER, PAPER.hosts["ctrl-b"], "beast-ctrl-b")[4] == [
        "storageattach", "beast-ctrl-b", "--storagectl", "SAS Controller", "--port", "0", "--device", "0",
        "--medium", "none",
    ]
    assert layout.detach_commands(PAPER, PAPER.hosts["clnt-1"], "beast-clnt-1") == []


def test_machine_settings_keep_paper_nic_names_and_log_the_serial_console(tmp_path: Path):
    assert layout.machine_commands(PAPER.hosts["ctrl-a"], tmp_path, "beast-ctrl-a") == [
        ["modifyvm", "beast-ctrl-a", "--nictype1", "virtio"],
        ["modifyvm", "beast-ctrl-a", "--nictype2", "82540EM"],
        ["modifyvm", "beast-ctrl-a", "--nictype3", "82540EM"],
        ["modifyvm", "beast-ctrl-a", "--uart1", "0x3F8", "4", "--uartmode1", "file", f"{tmp_path}/ctrl-a.console.log"],
    ]
    assert layout.guest_interfaces(PAPER.hosts["ctrl-b"]) == {"private": "em0", "public": "em1"}
    assert layout.guest_interfaces(PAPER.hosts["clnt-1"]) == {"public": "em0"}


def test_export_json_is_what_the_vagrantfile_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--lab-dir", str(tmp_path), "export-json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["box"] == BOX and exported["base_mac"] == "080027D14C66"
    assert [h["vm_name"] for h in exported["hosts"]] == ["beast-ctrl-a", "beast-ctrl-b", "beast-clnt-1"]
    ctrl_a = exported["hosts"][0]
    assert ctrl_a["networks"][1] == {"network": "public", "ip": "192.168.55.10", "netmask": "255.255.255.0",
                                     "nic_type": "82540EM", "guest_interface": "em1"}
    assert ctrl_a["first_boot_customize"] == layout.storage_commands(PAPER, PAPER.hosts["ctrl-a"], tmp_path)
    assert exported["hosts"][2]["first_boot_customize"] == []


def test_export_json_names_a_bad_topology_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--topology", str(tmp_path / "nope.toml"), "export-json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


# --- host-only networks ---------------------------------------------------------------------------


def test_versions_are_read_from_vboxmanage():
    assert parse_version("7.0.10_Debianr158379\n") == (7, 0, 10)
    assert parse_version("6.1.38r153438") == (6, 1, 38)


def test_networks_conf_missing_refuses_the_public_network_with_the_exact_line(tmp_path: Path):
    with pytest.raises(LabError) as err:
        check_host_only_ranges(PAPER, (7, 0, 10), None, tmp_path / "networks.conf")
    message = one_line(err)
    assert "public 192.168.55.0/24" in message and "private" not in message.split("allows only")[1]
    assert message.endswith(f"add this line to {tmp_path}/networks.conf (as root): {NETWORKS_CONF_LINE}")


def test_networks_conf_without_the_range_is_refused(tmp_path: Path):
    with pytest.raises(LabError) as err:
        check_host_only_ranges(PAPER, (6, 1, 28), "# lab\n* 10.0.0.0/8\n", tmp_path / "networks.conf")
    assert "does not allow private 192.168.56.0/24, public 192.168.55.0/24" in one_line(err)


@pytest.mark.parametrize("version, conf", [
    ((6, 1, 26), None),
    ((7, 0, 10), NETWORKS_CONF_LINE + "\n"),
    ((7, 0, 10), "* 0.0.0.0/0 ::/0\n"),
    ((7, 0, 10), "* 192.168.0.0/16\n"),
])
def test_allowed_host_only_ranges_pass(version, conf):
    check_host_only_ranges(PAPER, version, conf)


def test_host_only_interfaces_are_parsed_from_real_output():
    interfaces = parse_host_only_interfaces(HOSTONLYIFS)
    assert [(i.ip, i.netmask) for i in interfaces] == [("192.168.99.1", "255.255.255.0"),
                                                       ("192.168.56.1", "255.255.255.0")]


def test_missing_host_only_interface_is_created_and_addressed():
    vbox = FakeVBoxManage()
    chosen = ensure_host_only_networks(vbox, layout.host_only_networks(PAPER))
    assert vbox.calls == [
        ["list", "hostonlyifs"],
        ["hostonlyif", "create"],
        ["hostonlyif", "ipconfig", "vboxnet1", "--ip", "192.168.55.1", "--netmask", "255.255.255.0"],
    ]
    assert chosen == {"private": "VirtualBox NDIS 6.0 Miniport Driver", "public": "vboxnet1"}


# --- preflight errors ------------------------------------------------------------------------------


def test_vboxmanage_absent_is_a_missing_tool_with_the_install_hint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError) as err:
        VBoxManage()(["--version"])
    assert "apt-get install -y virtualbox" in one_line(err)


def test_vboxmanage_failure_reports_its_error_line(tmp_path: Path):
    fake = tmp_path / "VBoxManage"
    fake.write_text("#!/bin/sh\necho 'VBoxManage: error: Could not find a registered machine named x' >&2\n"
                    "echo 'VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(VBoxManageError) as err:
        VBoxManage(program=str(fake))(["showvminfo", "x"])
    assert one_line(err) == ("`VBoxManage showvminfo x` failed: "
                             "VBoxManage: error: Could not find a registered machine named x")


def test_missing_box_says_how_to_add_it(tmp_path: Path):
    provider = make_provider(tmp_path, fake_vagrant=FakeVagrant(boxes=[Box("generic/freebsd12", "virtualbox", "4")]))
    with pytest.raises(LabError) as err:
        provider.up()
    message = one_line(err)
    assert f"`vagrant box add {BOX} --provider virtualbox`" in message
    assert provider.fake_vagrant.calls == [("box_list",)]  # type: ignore[attr-defined]


def test_up_refuses_before_anything_when_networks_conf_lacks_the_range(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox, conf_text=None)
    with pytest.raises(LabError) as err:
        provider.up()
    assert one_line(err).endswith(NETWORKS_CONF_LINE)
    assert vbox.calls == [["--version"]]
    assert ("up", None, "virtualbox") not in provider.fake_vagrant.calls  # type: ignore[attr-defined]


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
