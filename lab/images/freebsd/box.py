"""A VirtualBox Vagrant box of the prepared FreeBSD 10.3 image, for when the published
``freebsd/FreeBSD-10.3-RELEASE`` box is gone: ``bst image freebsd --box FILE.box``.

Vagrant's box format for VirtualBox: a tar whose top level holds ``metadata.json`` (``{"provider":
"virtualbox"}``), the OVF that ``VBoxManage import`` reads (``box.ovf``), the disk it references (a
stream-optimized VMDK, ``qemu-img convert -O vmdk -o subformat=streamOptimized``) and, optionally, a
Vagrantfile merged under the project's.

The OVF declares what the paper's VMs need and what the project's Vagrantfile expects of the official box
(FreeBSD's release/scripts/box.ovf): the system disk on the PIIX4 IDE controller (ada0; the lab adds its own
AHCI and SAS controllers), NIC 1 on NAT with the official box's MAC as virtio (vtnet0, which the prepared
image asks DHCP on, as it does any NIC without its own line), NICs 2 and 3 Intel PRO/1000 MT Desktop
(82540EM, FreeBSD's em0 and em1, the paper's private and public networks), left unattached: Vagrant attaches
them to its host-only networks.

The prepared image has no ``vagrant`` user: root logs in by the image's own key, packed into the box, which
the box's Vagrantfile names. So the box is for this lab, not for publishing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path
from xml.sax.saxutils import quoteattr

from lab.errors import LabError, MissingToolError

OVF_FILE = "box.ovf"
DISK_FILE = "freebsd-10.3-disk1.vmdk"
METADATA_FILE = "metadata.json"
VAGRANTFILE = "Vagrantfile"
KEY_FILE = "id_ed25519"
BOX_MEMBERS = (METADATA_FILE, VAGRANTFILE, OVF_FILE, DISK_FILE, KEY_FILE)
"""The box's members, in the tar's order."""
VM_NAME = "beast-freebsd-10.3"
OS_TYPE = "FreeBSD_64"
MEMORY_MB = 1024
BASE_MAC = "080027D14C66"
"""The official box's NAT MAC (lab/providers/virtualbox/layout.BOX_BASE_MAC, which the Vagrantfile sets)."""
MANAGEMENT_NIC = "virtio"
LAB_NICS = ("82540EM", "82540EM")
"""em0 (private) and em1 (public): lab/providers/virtualbox/layout.LAB_NIC_TYPE."""
UUID_NAMESPACE = uuid.UUID("6c0f61b5-8f83-4cbb-9a1f-3a2b4ad0c2b1")
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"


def metadata_json() -> str:
    return json.dumps({"provider": "virtualbox"}) + "\n"


def box_vagrantfile() -> str:
    """The Vagrantfile the box carries: Vagrant merges it under the project's (which sets the same MAC)."""
    return f"""\
# BeaST Lab's FreeBSD 10.3 box (bst image freebsd --box): the prepared image has no vagrant user;
# root logs in with the image's own key, packed beside this file.
Vagrant.configure("2") do |config|
  config.vm.base_mac = "{BASE_MAC}"
  config.vm.guest = :freebsd
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.username = "root"
  config.ssh.private_key_path = File.expand_path("{KEY_FILE}", __dir__)
  config.ssh.insert_key = false
  config.ssh.shell = "sh"
end
"""


def ovf_text(capacity: int, disk_size: int, disk_uuid: str, machine_uuid: str) -> str:
    """The OVF 1.0 envelope: the standard hardware items and VirtualBox's own machine section, which
    ``VBoxManage import`` prefers (NIC types, MAC, unattached adapters)."""
    adapters = [f'<Adapter slot="0" enabled="true" MACAddress="{BASE_MAC}" cable="true" type="{MANAGEMENT_NIC}">'
                "<NAT/></Adapter>"]
    adapters += [f'<Adapter slot="{slot}" enabled="true" cable="true" type="{nic}"/>'
                 for slot, nic in enumerate(LAB_NICS, start=1)]
    lab_items = "".join(f"""
      <Item>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter em{index} (lab network, attached by Vagrant)</rasd:Caption>
        <rasd:ElementName>em{index}</rasd:ElementName>
        <rasd:InstanceID>{7 + index}</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>""" for index in range(len(LAB_NICS)))
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:href="{DISK_FILE}" ovf:id="file1" ovf:size="{disk_size}"/>
  </References>
  <DiskSection>
    <Info>The prepared FreeBSD 10.3 system disk</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{STREAM_OPTIMIZED}"
        vbox:uuid="{disk_uuid}"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>The management network: Vagrant's SSH, DHCP on vtnet0</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id={quoteattr(VM_NAME)}>
    <Info>BeaST Lab: FreeBSD 10.3 as in the paper</Info>
    <OperatingSystemSection ovf:id="78">
      <Info>The kind of installed guest operating system</Info>
      <Description>{OS_TYPE}</Description>
      <vbox:OSType ovf:required="false">{OS_TYPE}</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{VM_NAME}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>1 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>{MEMORY_MB} MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{MEMORY_MB} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{MEMORY_MB}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>vtnet0</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>virtio</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>{lab_items}
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.12-linux" uuid="{{{machine_uuid}}}" name={quoteattr(VM_NAME)}
        OSType="{OS_TYPE}" snapshotFolder="Snapshots">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="1"/>
        <Memory RAMSize="{MEMORY_MB}"/>
        <Chipset type="PIIX3"/>
        <Boot>
          <Order position="1" device="HardDisk"/>
          <Order position="2" device="None"/>
          <Order position="3" device="None"/>
          <Order position="4" device="None"/>
        </Boot>
        <BIOS>
          <ACPI enabled="true"/>
          <IOAPIC enabled="true"/>
        </BIOS>
        <Network>
          {"".join(adapters)}
        </Network>
        <RTC localOrUTC="UTC"/>
      </Hardware>
      <StorageControllers>
        <StorageController name="IDE Controller" type="PIIX4" PortCount="2" useHostIOCache="true" Bootable="true">
          <AttachedDevice type="HardDisk" port="0" device="0">
            <Image uuid="{{{disk_uuid}}}"/>
          </AttachedDevice>
        </StorageController>
      </StorageControllers>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
"""


def _qcow2_or_fail(image: Path) -> None:
    if not image.is_file():
        raise LabError(f"{image} is not a file: give the prepared FreeBSD 10.3 qcow2 (bst image freebsd prints it)")
    with open(image, "rb") as f:
        head = f.read(4)
    if head != b"QFI\xfb":
        raise LabError(f"{image} is not a qcow2 image (starts with {head.hex() or 'nothing'}): "
                       "give the prepared FreeBSD 10.3 root.qcow2")


def _qemu_img(*args: str) -> str:
    if shutil.which("qemu-img") is None:
        raise MissingToolError("qemu-img not found: install with `apt-get install -y qemu-utils`")
    result = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"`qemu-img {' '.join(args)}` failed: {last}")
    return result.stdout


def stream_optimized_command(qcow2: Path, vmdk: Path) -> list[str]:
    return ["qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat=streamOptimized",
            str(qcow2), str(vmdk)]


def package_box(image: Path, box: Path, private_key: Path, image_hash: str = "") -> Path:
    """Write ``box`` (a new file) from the prepared qcow2 ``image`` and its root key; returns ``box``.

    The tar is written beside ``box`` under a temporary name and renamed at the end, so an interrupted run
    leaves no half box. UUIDs follow ``image_hash`` (the prepared image's), so the same image makes the same OVF."""
    image, box, private_key = Path(image).expanduser(), Path(box).expanduser(), Path(private_key).expanduser()
    _qcow2_or_fail(image)
    if not private_key.is_file():
        raise LabError(f"the prepared image's root key {private_key} is missing: prepare the image again "
                       "(bst image freebsd --force ...)")
    if box.exists() or box.is_symlink():
        raise LabError(f"{box} already exists: remove it or give another FILE.box")
    if not box.parent.is_dir():
        raise LabError(f"{box.parent} is not a directory: give FILE.box in an existing directory")
    if box.suffix != ".box":
        raise LabError(f"{box} does not end in .box: name the box FILE.box")
    info = json.loads(_qemu_img("info", "--output=json", "-f", "qcow2", str(image)))
    seed = image_hash or f"{image.resolve()}:{image.stat().st_size}:{image.stat().st_mtime_ns}"
    disk_uuid = str(uuid.uuid5(UUID_NAMESPACE, f"disk:{seed}"))
    machine_uuid = str(uuid.uuid5(UUID_NAMESPACE, f"machine:{seed}"))
    work = Path(tempfile.mkdtemp(prefix=f".{box.name}.", dir=box.parent))
    partial = work / "box.tar"
    try:
        _qemu_img(*stream_optimized_command(image, work / DISK_FILE)[1:])
        (work / METADATA_FILE).write_text(metadata_json())
        (work / VAGRANTFILE).write_text(box_vagrantfile())
        (work / OVF_FILE).write_text(ovf_text(int(info["virtual-size"]), (work / DISK_FILE).stat().st_size,
                                              disk_uuid, machine_uuid))
        shutil.copyfile(private_key, work / KEY_FILE)
        os.chmod(work / KEY_FILE, 0o600)
        with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as archive:
            for name in BOX_MEMBERS:
                archive.add(work / name, arcname=name, recursive=False, filter=_plain)
        os.replace(partial, box)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return box


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member
