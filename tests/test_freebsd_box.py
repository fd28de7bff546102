"""`bst image freebsd --box FILE.box`: the prepared FreeBSD 10.3 image packed as a VirtualBox Vagrant box, tried
on a few-MiB qcow2 made by qemu-img: the tar's members, the OVF's hardware (the paper's NICs, the system disk
on IDE), the stream-optimized VMDK, `vagrant box add` (Debian's Vagrant, no VirtualBox needed), one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab import cli
from lab.errors import LabError
from lab.images.freebsd import box as boxes
from lab.images.freebsd.prepare import CURRENT, MANIFEST, PRIVATE_KEY, ROOT_DISK
from lab.images.freebsd.source import box_disk_member
from lab.providers.virtualbox import layout

NS = {
    "ovf": "http://schemas.dmtf.org/ovf/envelope/1",
    "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    "vbox": "http://www.virtualbox.org/ovf/machine",
}
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
VIRTUAL_SIZE = 6 * 1024 * 1024

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not on PATH")


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    """A 6 MiB qcow2 with a few bytes written in it, and an ed25519 key beside it (a prepared image's files)."""
    raw = tmp_path / "seed.raw"
    raw.write_bytes(b"FreeBSD-ish" * 4096 + bytes(VIRTUAL_SIZE - 11 * 4096))
    disk = tmp_path / ROOT_DISK
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], check=True)
    key = tmp_path / PRIVATE_KEY
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n")
    return disk, key


def packed(image: tuple[Path, Path], tmp_path: Path, name: str = "beast.box", image_hash: str = "h" * 64) -> Path:
    return boxes.package_box(image[0], tmp_path / name, image[1], image_hash)


def member_text(box: Path, name: str) -> str:
    with tarfile.open(box) as archive:
        return archive.extractfile(name).read().decode()


def ovf_root(box: Path) -> ET.Element:
    return ET.fromstring(member_text(box, boxes.OVF_FILE))


def test_the_box_is_a_tar_of_metadata_vagrantfile_ovf_vmdk_and_key_at_its_top(image, tmp_path):
    box = packed(image, tmp_path)
    with tarfile.open(box) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == list(boxes.BOX_MEMBERS)
    assert all(m.isfile() and m.uid == 0 and m.gid == 0 for m in members)
    assert {m.name: m.mode for m in members}[boxes.KEY_FILE] == 0o600
    assert json.loads(member_text(box, boxes.METADATA_FILE)) == {"provider": "virtualbox"}
    assert member_text(box, boxes.KEY_FILE) == image[1].read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ROOT_DISK, PRIVATE_KEY, "seed.raw", "beast.box"])


def test_the_disk_is_a_stream_optimized_vmdk_of_the_image(image, tmp_path):
    box = packed(image, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(box) as archive:
        archive.extract(boxes.DISK_FILE, out, filter="data")
        assert box_disk_member(archive, box).name == boxes.DISK_FILE  # `bst image freebsd FILE.box` takes it back
    vmdk = out / boxes.DISK_FILE
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vmdk)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["format"] == "vmdk" and info["virtual-size"] == VIRTUAL_SIZE
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    same = subprocess.run(["qemu-img", "compare", "-q", str(image[0]), str(vmdk)])
    assert same.returncode == 0


def test_the_ovf_references_the_disk_by_name_size_capacity_and_format(image, tmp_path):
    box = packed(image, tmp_path)
    root = ovf_root(box)
    with tarfile.open(box) as archive:
        disk_size = archive.getmember(boxes.DISK_FILE).size
    (file,) = root.findall("ovf:References/ovf:File", NS)
    assert file.get(f"{OVF}href") == boxes.DISK_FILE and file.get(f"{OVF}size") == str(disk_size)
    (disk,) = root.findall("ovf:DiskSection/ovf:Disk", NS)
    assert disk.get(f"{OVF}capacity") == str(VIRTUAL_SIZE)
    assert disk.get(f"{OVF}fileRef") == file.get(f"{OVF}id")
    assert disk.get(f"{OVF}format").endswith("#streamOptimized")
    disk_uuid = disk.get("{http://www.virtualbox.org/ovf/machine}uuid")
    attached = ".//vbox:Machine/ovf:StorageControllers/ovf:StorageController/ovf:AttachedDevice/ovf:Image"
    (image_ref,) = root.findall(attached, NS)
    assert image_ref.get("uuid") == "{" + disk_uuid + "}"


def test_the_ovf_gives_the_paper_hardware_system_disk_on_ide_nat_virtio_then_two_intel_nics(image, tmp_path):
    root = ovf_root(packed(image, tmp_path))
    items = root.findall("ovf:VirtualSystem/ovf:VirtualHardwareSection/ovf:Item", NS)

    def of_type(resource_type: int) -> list[ET.Element]:
        return [i for i in items if i.findtext("rasd:ResourceType", namespaces=NS) == str(resource_type)]

    (ide,) = of_type(5)
    assert ide.findtext("rasd:ResourceSubType", namespaces=NS) == "PIIX4"
    (disk,) = of_type(17)
    assert disk.findtext("rasd:Parent", namespaces=NS) == ide.findtext("rasd:InstanceID", namespaces=NS)
    assert disk.findtext("rasd:HostResource", namespaces=NS) == "/disk/vmdisk1"
    nics = [(n.findtext("rasd:ResourceSubType", namespaces=NS), n.findtext("rasd:Connection", namespaces=NS))
            for n in of_type(10)]
    assert nics == [("virtio", "NAT"), ("E1000", None), ("E1000", None)]
    assert not of_type(20)  # no SATA/SAS controller: the lab adds its own (layout.AHCI_INSTANCE is ahci/0)

    machine = root.find("ovf:VirtualSystem/vbox:Machine", NS)  # its children are in the envelope's namespace
    assert machine.get("OSType") == "FreeBSD_64"
    adapters = machine.findall("ovf:Hardware/ovf:Network/ovf:Adapter", NS)
    assert [(a.get("slot"), a.get("type"), a.get("enabled")) for a in adapters] == [
        ("0", layout.MANAGEMENT_NIC_TYPE, "true"), ("1", layout.LAB_NIC_TYPE, "true"),
        ("2", layout.LAB_NIC_TYPE, "true")]
    assert adapters[0].get("MACAddress") == layout.BOX_BASE_MAC and adapters[0].find("ovf:NAT", NS) is not None
    assert all(len(list(a)) == 0 for a in adapters[1:])  # not attached: Vagrant's private_network attaches them
    (controller,) = machine.findall("ovf:StorageControllers/ovf:StorageController", NS)
    assert (controller.get("name"), controller.get("type")) == ("IDE Controller", "PIIX4")


def test_the_boxs_vagrantfile_logs_root_in_with_the_packed_key(image, tmp_path):
    text = member_text(packed(image, tmp_path), boxes.VAGRANTFILE)
    assert 'config.ssh.username = "root"' in text
    assert f'config.ssh.private_key_path = File.expand_path("{boxes.KEY_FILE}", __dir__)' in text
    assert f'config.vm.base_mac = "{layout.BOX_BASE_MAC}"' in text
    if shutil.which("ruby"):
        check = subprocess.run(["ruby", "-c", "-e", text], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_the_same_image_makes_the_same_ovf(image, tmp_path):
    first = member_text(packed(image, tmp_path, "a.box"), boxes.OVF_FILE)
    assert member_text(packed(image, tmp_path, "b.box"), boxes.OVF_FILE) == first
    assert member_text(packed(image, tmp_path, "c.box", image_hash="other"), boxes.OVF_FILE) != first


def test_vagrant_box_add_takes_the_box_without_virtualbox(image, tmp_path):
    for tool in ("vagrant", "bsdtar"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH: `nox -s tests` unpacks it into .nox/host-tools/bin")
    box = packed(image, tmp_path)
    home = tmp_path / "vagrant.d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAGRANT_")}
    env.update(VAGRANT_HOME=str(home), VAGRANT_CHECKPOINT_DISABLE="1")
    run = dict(env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # away from our Vagrantfile
    added = subprocess.run(["vagrant", "box", "add", "--name", "beast-test", str(box)], **run)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "Successfully added box 'beast-test' (v0) for 'virtualbox'!" in added.stdout
    listed = subprocess.run(["vagrant", "box", "list"], **run)
    assert "beast-test (virtualbox, 0)" in listed.stdout
    unpacked = home / "boxes" / "beast-test" / "0" / "virtualbox"
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(boxes.BOX_MEMBERS)


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "is not a file: give the prepared FreeBSD 10.3 qcow2"),
    ("raw", "is not a qcow2 image (starts with 46726565)"),
    ("exists", "beast.box already exists: remove it or give another FILE.box"),
    ("no-dir", "is not a directory: give FILE.box in an existing directory"),
    ("suffix", "does not end in .box"),
    ("no-key", "root key"),
])
def test_bad_input_is_one_line_and_leaves_nothing(image, tmp_path, case, message):
    disk, key = image
    target = tmp_path / "beast.box"
    if case == "missing":
        disk = tmp_path / "absent.qcow2"
    elif case == "raw":
        disk = tmp_path / "seed.raw"
    elif case == "exists":
        target.write_text("mine")
    elif case == "no-dir":
        target = tmp_path / "nowhere" / "beast.box"
    elif case == "suffix":
        target = tmp_path / "beast.tar"
    elif case == "no-key":
        key = tmp_path / "absent_key"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LabError) as caught:
        boxes.package_box(disk, target, key)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert target.read_text() == "mine"


# --- the command ---------------------------------------------------------------------------------


def current_image(cache: Path, image: tuple[Path, Path]) -> Path:
    """The cache as `bst image freebsd` leaves it: images/freebsd-<hash>/ with the manifest, made current."""
    prepared_hash = "c0ffee" * 10 + "abcd"
    folder = cache / "images" / f"freebsd-{prepared_hash[:12]}"
    folder.mkdir(parents=True)
    shutil.copyfile(image[0], folder / ROOT_DISK)
    shutil.copyfile(image[1], folder / PRIVATE_KEY)
    (folder / MANIFEST).write_text(json.dumps({"prepared_hash": prepared_hash}))
    (cache / "images" / CURRENT).write_text(json.dumps({"dir": folder.name, "prepared_hash": prepared_hash}))
    return folder


def bst(*args: str):
    return CliRunner().invoke(cli.app, ["image", "freebsd", *args])


def test_box_alone_packs_the_image_prepared_last_and_says_the_two_commands_that_use_it(image, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "cache"))
    current_image(tmp_path / "cache", image)
    result = bst("--box", str(tmp_path / "beast.box"))
    assert result.exit_code == 0, result.output
    assert f"VirtualBox box written: {tmp_path / 'beast.box'}" in result.stdout
    assert f"vagrant box add --name beast/FreeBSD-10.3 {tmp_path / 'beast.box'}" in result.stdout
    assert "BEAST_BOX=beast/FreeBSD-10.3 bst up --provider virtualbox" in result.stdout
    assert member_text(tmp_path / "beast.box", boxes.KEY_FILE) == image[1].read_text()


def test_box_alone_without_a_prepared_image_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "cache"))
    result = bst("--box", str(tmp_path / "beast.box"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: no prepared FreeBSD 10.3 image to pack: bst image freebsd --download --box FILE.box "
        "(or FILE instead of --download)"]
    assert not (tmp_path / "beast.box").exists()


def test_a_box_over_an_existing_file_is_one_line_from_the_command(image, tmp_path, monkeypatch):
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "cache"))
    current_image(tmp_path / "cache", image)
    (tmp_path / "beast.box").write_text("mine")
    result = bst("--box", str(tmp_path / "beast.box"))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith("beast.box already exists: remove it or give another FILE.box")
