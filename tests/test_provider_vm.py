"""The paper's lab in real QEMU VMs: three hosts boot, controllers share disks, networks connect.

Slow (a few minutes under TCG); run with ``pytest -m vm``. Needs the Debian guest image: used from
the cache, built first (≈8 min) when this machine can build it, skipped only when it cannot.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from lab import remote
from lab.errors import LabError
from lab.labdir import processes_of
from lab.providers.qemu import QemuProvider
from lab.result import CommandResult
from lab.topology import load_topology

pytestmark = pytest.mark.vm

DATA_SERIALS = ["beast-d00", "beast-d01", "beast-d10", "beast-d11"]
CACHE_SERIALS = ["beast-f00", "beast-f01", "beast-f10", "beast-f11"]


def guest_image():
    from lab.images import default_cache_dir
    from lab.images.debian import cached_image, debian_recipe_hash, ensure_debian_image, image_dir_for

    recipe_hash = debian_recipe_hash()
    image = cached_image(image_dir_for(default_cache_dir(), recipe_hash), recipe_hash)
    if image is not None:
        return image
    missing = [
        tool
        for tool in ("qemu-system-x86_64", "qemu-img", "vde_switch", "debootstrap")
        if shutil.which(tool) is None
    ]
    if missing or os.geteuid() != 0:
        needs = ", ".join(["root", *missing])
        pytest.skip(f"no cached guest image, and building one here needs {needs}")
    return ensure_debian_image()


class Lab:
    def __init__(self, provider: QemuProvider, up_seconds: float):
        self.provider = provider
        self.up_seconds = up_seconds
        self.connections: dict = {}

    def run(self, host: str, cmd: str, timeout: float = 60) -> CommandResult:
        if host not in self.connections:
            self.connections[host] = remote.connect(self.provider.ssh_target(host), timeout=30)
        return remote.run(self.connections[host], cmd, timeout=timeout, host=host)

    def check(self, host: str, cmd: str, timeout: float = 60) -> str:
        record = self.run(host, cmd, timeout)
        assert record.ok, remote.describe_failure(record)
        return record.stdout

    def forget(self, host: str) -> None:
        conn = self.connections.pop(host, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for host in list(self.connections):
            self.forget(host)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    image = guest_image()
    provider = QemuProvider(load_topology(), lab_dir=tmp_path_factory.mktemp("vmlab") / "beast", image=image)
    started = time.monotonic()
    try:
        provider.up()
    except Exception:
        provider.down()
        raise
    running = Lab(provider, time.monotonic() - started)
    print(
        f"\nup took {running.up_seconds:.1f} s for {len(provider.topology.hosts)} VMs "
        f"(accel {provider.status()[0].accel})"
    )
    yield running
    running.close()
    provider.down()
    assert processes_of(provider.lab_dir) == []


def test_every_host_runs_and_answers_ssh(lab: Lab):
    states = {s.name: s for s in lab.provider.status()}
    assert {name: str(s.state) for name, s in states.items()} == {
        "ctrl-a": "running",
        "ctrl-b": "running",
        "clnt-1": "running",
    }
    assert all(s.ssh_port and s.pid and s.accel in ("kvm", "tcg") for s in states.values())
    ids = lab.provider.hostids()
    for host in states:
        assert lab.check(host, "hostname").strip() == host
        assert lab.check(host, "hostid").strip() == ids[host]


def serials(lab: Lab, host: str) -> dict[str, tuple[str, str]]:
    """Disk serial -> (kernel name, rotational flag)."""
    out = lab.check(host, "lsblk -dn -o NAME,SERIAL,ROTA")
    rows = [line.split() for line in out.splitlines()]
    return {row[1]: (row[0], row[2]) for row in rows if len(row) == 3}


def test_both_controllers_see_the_same_shared_disks(lab: Lab):
    a, b = serials(lab, "ctrl-a"), serials(lab, "ctrl-b")
    for seen in (a, b):
        assert set(DATA_SERIALS + CACHE_SERIALS) <= set(seen)
        assert all(seen[s][1] == "0" for s in CACHE_SERIALS), "cache disks report a non-rotating medium"
    assert not set(serials(lab, "clnt-1")) & set(DATA_SERIALS + CACHE_SERIALS)
    by_id = lab.check("ctrl-b", "ls /dev/disk/by-id/")
    assert all(s in by_id for s in DATA_SERIALS + CACHE_SERIALS)


@pytest.mark.parametrize("serial", ["beast-d11", "beast-f00"])
def test_a_block_written_on_ctrl_a_is_read_on_ctrl_b(lab: Lab, serial: str):
    device_a = "/dev/" + serials(lab, "ctrl-a")[serial][0]
    device_b = "/dev/" + serials(lab, "ctrl-b")[serial][0]
    digest = lab.check(
        "ctrl-a", "head -c 4096 /dev/urandom > /root/block && sha256sum < /root/block"
    ).split()[0]
    lab.check(
        "ctrl-a",
        f"dd if=/root/block of={device_a} bs=4096 seek=77 count=1 oflag=direct conv=fsync status=none",
    )
    read = lab.check(
        "ctrl-b", f"dd if={device_b} bs=4096 skip=77 count=1 iflag=direct status=none | sha256sum"
    )
    assert read.split()[0] == digest


def reaches(lab: Lab, host: str, address: str) -> bool:
    for _ in range(5):
        if lab.run(host, f"timeout 3 bash -c '</dev/tcp/{address}/22'", timeout=15).ok:
            return True
        time.sleep(1)
    return False


def test_controllers_reach_each_other_over_private(lab: Lab):
    assert reaches(lab, "ctrl-a", "192.168.56.11")
    assert reaches(lab, "ctrl-b", "192.168.56.10")


def test_all_three_reach_each_other_over_public(lab: Lab):
    public = {"ctrl-a": "192.168.55.10", "ctrl-b": "192.168.55.11", "clnt-1": "192.168.55.20"}
    for source in public:
        for target, address in public.items():
            if source != target:
                assert reaches(lab, source, address), f"{source} cannot reach {target} at {address}"


def test_client_is_not_on_the_private_network(lab: Lab):
    assert not lab.run("clnt-1", "timeout 3 bash -c '</dev/tcp/192.168.56.10/22'", timeout=15).ok


def test_a_pulled_cable_cuts_one_network_until_it_is_plugged_back(lab: Lab):
    lab.provider.set_link("ctrl-a", "private", up=False)
    try:
        assert not lab.run("ctrl-b", "timeout 3 bash -c '</dev/tcp/192.168.56.10/22'", timeout=15).ok
        assert reaches(lab, "ctrl-b", "192.168.55.10"), "the public network must stay up"
    finally:
        lab.provider.set_link("ctrl-a", "private", up=True)
    assert reaches(lab, "ctrl-b", "192.168.56.10")


def test_a_cable_on_a_network_the_host_is_not_on_is_one_clear_error(lab: Lab):
    with pytest.raises(LabError, match="clnt-1 has no NIC on network 'private'; it is on: public"):
        lab.provider.set_link("clnt-1", "private", up=False)


def test_up_again_is_a_no_op(lab: Lab):
    pids = {s.name: s.pid for s in lab.provider.status()}
    started = time.monotonic()
    lab.provider.up()
    assert time.monotonic() - started < 15
    assert {s.name: s.pid for s in lab.provider.status()} == pids


def test_pause_resume_power_off_and_start(lab: Lab):
    provider = lab.provider
    provider.pause("ctrl-b")
    assert str(provider.status()[1].state) == "paused"
    provider.resume("ctrl-b")
    assert str(provider.status()[1].state) == "running"
    assert lab.check("ctrl-b", "echo alive").strip() == "alive"

    lab.forget("clnt-1")
    started = time.monotonic()
    provider.power_off("clnt-1")
    assert time.monotonic() - started < 5
    assert str(provider.status()[2].state) == "stopped"
    assert provider.console_log("clnt-1").stat().st_size > 0
    provider.start("clnt-1")
    assert str(provider.status()[2].state) == "running"
    assert lab.check("clnt-1", "hostname").strip() == "clnt-1"
