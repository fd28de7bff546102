"""The listener's hands: a QemuProvider of the lab, rebuilt from the lab directory, seen as lab.fence's
Power (state, off, on). Off is QMP ``quit`` then the owned-pid stop, for a paused VM as for a running
one; on launches qemu and does not wait for SSH (the cluster only needs the power on)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from lab.errors import LabError
from lab.images import GuestImage
from lab.providers.qemu import QemuProvider
from lab.runfolder_io import NotARegularFile, loads, read_bytes
from lab.stacks.hardware import GuestHardware
from lab.topology import topology_from_dict

IMAGE_FIELDS = ("name", "root_disk", "recipe_hash", "root_device")
"""What state.json's image must record for a host to be started again (kernel and initrd may be null)."""


class ProviderPower:
    def __init__(self, provider: QemuProvider):
        self.provider = provider
        self.hosts = list(provider.topology.hosts)

    def state(self, host: str) -> str:
        return self.provider.host_status(host).state.value

    def off(self, host: str) -> None:
        self.provider.power_off(host)

    def on(self, host: str) -> None:
        image = self.provider.load_state().get("image")
        if not image or not all(isinstance(image.get(field), str) for field in IMAGE_FIELDS):
            raise LabError(f"{self.provider.state_path} records no guest image; start the lab with `bst up`")
        self.provider.image = GuestImage(
            image["name"],
            Path(image["root_disk"]),
            Path(image["kernel"]) if image.get("kernel") else None,
            Path(image["initrd"]) if image.get("initrd") else None,
            image["recipe_hash"],
            image["root_device"],
        )
        self.provider.launch(host)

    def uuid(self, host: str) -> str:
        return self.provider.hostids()[host]


def provider_of(lab_dir: Path) -> QemuProvider:
    """The lab's provider as ``launch.json`` (written by lab.providers.qemu.fence.service) describes it."""
    fence_dir = lab_dir / "fence"
    try:
        launch = loads(read_bytes(fence_dir, fence_dir / "launch.json")[0].decode("utf-8"))
        if not (isinstance(launch, dict) and isinstance(launch.get("topology"), str)
                and isinstance(launch.get("qemu"), str)):
            raise ValueError("it records no topology file and qemu as text")
        topology_path = fence_dir / launch["topology"]
        topology_text = read_bytes(fence_dir, topology_path)[0].decode("utf-8")
        hardware = GuestHardware.from_dict(launch["hardware"])
        data = tomllib.loads(topology_text)
    except (OSError, ValueError, KeyError, TypeError, NotARegularFile) as err:
        raise LabError(f"{fence_dir / 'launch.json'} cannot describe the lab ({err}); run `bst up` again") from None
    topology = topology_from_dict(data, source=str(topology_path))
    return QemuProvider(topology, lab_dir=lab_dir, qemu=launch["qemu"], hardware=hardware)
