"""Stand-ins for VBoxManage and Vagrant, and VBoxManage's texts, shared by the offline VirtualBox provider tests.

The texts are constructed in the layouts VBoxManageInfo.cpp and VBoxManageMisc.cpp print; the fakes record
every call so a test can compare the exact command lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from vagrant import Box

from lab.errors import LabError
from lab.providers.virtualbox import VirtualBoxProvider, layout
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


def refusal(call: Callable[..., object], *args: object) -> str:
    """The LabError ``call(*args)`` must raise, checked to be one line: what ``bst`` would print."""
    with pytest.raises(LabError) as err:
        call(*args)
    return one_line(err)
