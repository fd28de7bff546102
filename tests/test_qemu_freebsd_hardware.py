"""The FreeBSD stack's hardware on qemu, offline: the argv the provider builds, the names FreeBSD 10.3 would
give it (lab.stacks.freebsd.naming, as strict as QEMU and 10.3's GENERIC), the image and key it boots with,
and `bst up --stack`. The Linux stack's argv stays byte for byte what it was before this hardware existed."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.errors import LabError
from lab.images import GuestImage
from lab.providers.qemu import QemuProvider
from lab.stacks.freebsd.devices import FIRST_DATA_ADA, arbitrator_disk, client_disk, disk_device, nic
from lab.stacks.freebsd.naming import freebsd_names
from lab.stacks.hardware import AHCI_PORT0, FREEBSD_HARDWARE, LINUX_HARDWARE, VIRTIO_BLK, GuestHardware
from lab.topology import default_topology_path, load_topology, topology_from_dict

FIXTURE = Path(__file__).parent / "fixtures" / "qemu" / "linux_argv_b524b72.json"
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeast test@lab"


@pytest.fixture(autouse=True)
def no_debian_build(monkeypatch: pytest.MonkeyPatch):
    """A FreeBSD lab never builds the Debian image (a regression would start a 5-minute debootstrap)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the Debian image was asked for")

    monkeypatch.setattr("lab.images.debian.ensure_debian_image", refuse)


def freebsd_image(directory: Path, key: Path | None = None) -> GuestImage:
    return GuestImage("freebsd-10.3", directory / "root.qcow2", None, None, "beef" * 16, "/dev/ada0", key)


def freebsd_provider(tmp_path: Path, topology=None) -> QemuProvider:
    return QemuProvider(topology or load_topology(), lab_dir=tmp_path / "lab", hardware=FREEBSD_HARDWARE)


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_the_linux_argv_is_byte_for_byte_the_one_before_the_freebsd_hardware():
    """tests/fixtures/qemu/linux_argv_b524b72.json: qemu_command of commit b524b72 for every paper host."""
    image = GuestImage("debian-bookworm", Path("/CACHE/root.qcow2"), Path("/CACHE/vmlinuz"),
                       Path("/CACHE/initrd.img"), "f00d")
    for hardware in (None, LINUX_HARDWARE):
        provider = QemuProvider(load_topology(), lab_dir=Path("/LAB"), hardware=hardware)
        hosts = enumerate(provider.topology.hosts)
        now = {h: provider.qemu_command(h, image, 40022 + i, "tcg", PUBKEY) for i, h in hosts}
        assert now == json.loads(FIXTURE.read_text())


def test_the_stacks_declare_their_hardware_as_plain_data():
    assert (LINUX_HARDWARE.system_disk, LINUX_HARDWARE.sas_controller, LINUX_HARDWARE.boots_from_disk,
            LINUX_HARDWARE.image, LINUX_HARDWARE.smbios_uuid) == (VIRTIO_BLK, "virtio-scsi-pci", False, "debian", False)
    assert (FREEBSD_HARDWARE.lab_nic_model, FREEBSD_HARDWARE.system_disk, FREEBSD_HARDWARE.sas_controller,
            FREEBSD_HARDWARE.sas_controller_fallback, FREEBSD_HARDWARE.boots_from_disk, FREEBSD_HARDWARE.image,
            FREEBSD_HARDWARE.smbios_uuid) == ("e1000", AHCI_PORT0, "mptsas1068", "virtio-scsi-pci", True,
                                              "freebsd-10.3", True)
    assert (LINUX_HARDWARE.system_disk_on_ahci, FREEBSD_HARDWARE.system_disk_on_ahci) == (False, True)
    assert GuestHardware.from_dict(json.loads(json.dumps(FREEBSD_HARDWARE.to_dict()))) == FREEBSD_HARDWARE
    with pytest.raises(ValueError, match="unknown guest hardware fields colour"):
        GuestHardware.from_dict({"lab_nic_model": "e1000", "colour": "red"})


def test_the_freebsd_controller_argv(tmp_path: Path):
    provider = freebsd_provider(tmp_path)
    argv = provider.qemu_command("ctrl-a", freebsd_image(tmp_path), 40022, "tcg", PUBKEY)
    lab = provider.lab_dir
    assert not {"-kernel", "-initrd", "-append"} & set(argv)
    devices = values(argv, "-device")
    assert devices[devices.index("ich9-ahci,id=ahci0"):] == [
        "ich9-ahci,id=ahci0",
        "mptsas1068,id=scsi0",
        "ide-hd,bus=ahci0.0,drive=root,bootindex=0",
        "ide-hd,bus=ahci0.1,drive=d00,serial=beast-d00,share-rw=on",
        "ide-hd,bus=ahci0.2,drive=d01,serial=beast-d01,share-rw=on",
        "ide-hd,bus=ahci0.3,drive=d10,serial=beast-d10,share-rw=on",
        "ide-hd,bus=ahci0.4,drive=d11,serial=beast-d11,share-rw=on",
        *(f"scsi-hd,bus=scsi0.0,channel=0,scsi-id={t},lun=0,drive={d},serial=beast-{d},share-rw=on,rotation_rate=1"
          for t, d in enumerate(("f00", "f01", "f10", "f11"))),
        "virtio-net-pci,netdev=management,mac=52:54:00:1b:01:00",
        "e1000,netdev=private,mac=52:54:00:1b:01:01",
        "e1000,netdev=public,mac=52:54:00:1b:01:02",
    ]
    root = f"if=none,id=root,file={lab}/vm/ctrl-a/overlay.qcow2,format=qcow2,cache=writeback"
    assert values(argv, "-drive")[0] == root
    assert "virtio-blk-pci,drive=root" not in devices


def test_each_vm_gets_its_own_stable_smbios_uuid_and_so_its_own_freebsd_hostid(tmp_path: Path):
    provider = freebsd_provider(tmp_path)
    uuids = {h: values(provider.qemu_command(h, freebsd_image(tmp_path), 1, "tcg", PUBKEY), "-uuid")
             for h in provider.topology.hosts}
    assert all(len(v) == 1 for v in uuids.values())
    uuids = {h: v[0] for h, v in uuids.items()}
    x = "[0-9a-f]"
    assert all(re.fullmatch(f"{x}{{8}}-{x}{{4}}-{x}{{4}}-{x}{{4}}-{x}{{12}}", u) for u in uuids.values()), \
        "etc/rc.d/hostid of 10.3 takes only a lower-case UUID"
    hostids = {hashlib.md5(u.encode()).hexdigest()[:8] for u in uuids.values()}
    assert len(set(uuids.values())) == len(hostids) == 3
    again = freebsd_provider(tmp_path / "again").qemu_command("ctrl-b", freebsd_image(tmp_path), 2, "tcg", PUBKEY)
    assert values(again, "-uuid") == [uuids["ctrl-b"]]


def test_the_model_names_the_papers_hosts_as_the_freebsd_stack_plans(tmp_path: Path):
    provider = freebsd_provider(tmp_path)
    topo = provider.topology
    for host in topo.hosts.values():
        names = freebsd_names(provider.qemu_command(host.name, freebsd_image(tmp_path), 40022, "tcg", PUBKEY))
        assert names.boot_disk == names.disks["root"] == "ada0" == f"ada{FIRST_DATA_ADA - 1}"
        assert names.nics["management"] == "vtnet0"
        assert {network: names.nics[network] for network in host.addresses} == {
            network: nic(i) for i, network in enumerate(host.addresses)}
        if host.role.value == "controller":
            assert {d: names.disks[d] for d in topo.disks} == {d: disk_device(topo, d) for d in topo.disks}
            assert names.next_da == arbitrator_disk(topo) == "da4"
        else:
            assert set(names.disks) == {"root"}
            assert names.next_da == client_disk(topo, "ctrl-a", 0) == "da0"
    assert names.unattached == ["virtio-rng-pci"]


def variant(sata_extra: int = 0, sas_extra: int = 0):
    data = copy.deepcopy(tomllib.loads(default_topology_path().read_text()))
    for i in range(sata_extra):
        data["disks"][f"d2{i}"] = {"role": "data", "bus": "sata", "size_mb": 128}
    for i in range(sas_extra):
        data["disks"][f"f2{i}"] = {"role": "cache", "bus": "sas", "size_mb": 128}
    return topology_from_dict(data, "variant")


def test_a_sata_shelf_past_port_5_spills_to_a_second_ahci_and_keeps_its_names(tmp_path: Path):
    provider = freebsd_provider(tmp_path, variant(sata_extra=3))
    argv = provider.qemu_command("ctrl-a", freebsd_image(tmp_path), 1, "tcg", PUBKEY)
    buses = [re.search(r"bus=([^,]+)", d).group(1) for d in values(argv, "-device") if d.startswith("ide-hd")]
    assert buses == ["ahci0.0", "ahci0.1", "ahci0.2", "ahci0.3", "ahci0.4", "ahci0.5", "ahci1.0", "ahci1.1"]
    names = freebsd_names(argv)
    assert {d: names.disks[d] for d in provider.topology.disks} == {
        d: disk_device(provider.topology, d) for d in provider.topology.disks}
    assert names.disks["d22"] == "ada7"


def test_more_sas_disks_than_the_lsi_sas1068_has_targets_is_one_clear_error(tmp_path: Path):
    provider = freebsd_provider(tmp_path, variant(sas_extra=5))
    with pytest.raises(LabError, match="9 SAS disks do not fit on one mptsas1068 \\(8 targets\\)"):
        provider.qemu_command("ctrl-a", freebsd_image(tmp_path), 1, "tcg", PUBKEY)


def test_the_linux_hardware_is_refused_an_image_without_a_kernel(tmp_path: Path):
    provider = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", hardware=LINUX_HARDWARE)
    with pytest.raises(LabError, match="image freebsd-10.3 has no kernel to boot"):
        provider.qemu_command("ctrl-a", freebsd_image(tmp_path), 1, "tcg", PUBKEY)


BASE = ["qemu-system-x86_64", "-machine", "q35", "-drive", "if=none,id=root,file=r", "-drive", "if=none,id=d0,file=d",
        "-netdev", "user,id=management"]


@pytest.mark.parametrize(("devices", "refusal"), [
    (["ich9-ahci,id=a", "ide-hd,bus=a.6,drive=root"], "an ich9-ahci has ports 0-5"),
    (["ide-hd,bus=a.0,drive=root"], "no AHCI port of that name"),
    (["ich9-ahci,id=a", "ide-hd,bus=a.0,drive=root", "ide-hd,bus=a.0,drive=d0"], "already in use"),
    (["ich9-ahci,id=a", "ide-hd,bus=a.0,drive=root", "ide-hd,bus=a.1,drive=root"], "attached twice"),
    (["ich9-ahci,id=a", "ide-hd,bus=a.0,drive=nope"], "no -drive with that id"),
    (["mptsas1068,id=s", "scsi-hd,bus=s.0,scsi-id=8,lun=0,drive=d0"], "mptsas1068 takes targets 0-7 and 1 LUN"),
    (["mptsas1068,id=s", "scsi-hd,bus=s.0,scsi-id=0,lun=1,drive=d0"], "mptsas1068 takes targets 0-7 and 1 LUN"),
    (["megasas-gen2,id=s"], "mfid<N>, not da<N>"),
    (["pvscsi,id=s"], "FreeBSD 10.3 has no pvscsi driver"),
    (["nvme,drive=d0,serial=x"], "nvd<N>"),
    (["virtio-blk-pci,drive=root"], "vtbd<N>"),
    (["rtl8139,netdev=management"], "knows no driver for it"),
    (["e1000,netdev=private"], "no -netdev with id private"),
])
def test_the_model_refuses_what_qemu_or_freebsd_10_3_would(devices: list[str], refusal: str):
    argv = list(BASE)
    for device in devices:
        argv += ["-device", device]
    with pytest.raises(LabError, match=re.escape(refusal)):
        freebsd_names(argv)


def test_the_model_orders_units_by_pci_slot_and_skips_empty_ports():
    argv = [*BASE, "-drive", "if=none,id=d1,file=x", "-drive", "if=none,id=d2,file=y",
            "-netdev", "vde,id=lan,sock=s",
            "-device", "e1000,netdev=lan", "-device", "ich9-ahci,id=a", "-device", "lsi53c895a,id=s",
            "-device", "virtio-net-pci,netdev=management", "-device", "ide-hd,bus=ide.2,drive=d2",
            "-device", "ide-hd,bus=a.3,drive=root", "-device", "scsi-hd,bus=s.0,scsi-id=5,drive=d0",
            "-device", "ide-hd,bus=a.1,drive=d1"]
    names = freebsd_names(argv)
    assert names.disks == {"d1": "ada0", "root": "ada1", "d2": "ada2", "d0": "da0"}
    assert names.nics == {"lan": "em0", "management": "vtnet0"}
    with pytest.raises(LabError, match="q35"):
        freebsd_names(["qemu-system-x86_64", "-machine", "pc"])


# the provider


def test_freebsd_hardware_without_a_prepared_image_says_how_to_make_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    import lab.images.freebsd as freebsd_images

    asked: list[Path | None] = []
    monkeypatch.setattr(freebsd_images, "current_freebsd_image", lambda cache_dir=None: asked.append(cache_dir),
                        raising=False)
    provider = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", hardware=FREEBSD_HARDWARE,
                            cache_dir=tmp_path / "cache")
    with pytest.raises(LabError, match=re.escape("no prepared FreeBSD 10.3 image: run `bst image freebsd FILE` "
                                                 "(or `--download`) first")):
        provider._image(None)
    assert asked == [tmp_path / "cache"]
    image = freebsd_image(tmp_path)
    monkeypatch.setattr(freebsd_images, "current_freebsd_image", lambda cache_dir=None: image, raising=False)
    assert provider._image(None) is image


def test_a_kernel_booted_image_is_refused_for_the_freebsd_hardware(tmp_path: Path):
    debian = GuestImage("debian-bookworm", tmp_path / "r.qcow2", tmp_path / "vmlinuz", None, "f00d")
    provider = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", hardware=FREEBSD_HARDWARE, image=debian)
    with pytest.raises(LabError, match="boot their own loader; choose the stack the image is for"):
        provider._image(None)


def image_key(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.mark.parametrize("with_public_half", [True, False])
def test_the_lab_uses_the_images_own_key(tmp_path: Path, with_public_half: bool):
    key = image_key(tmp_path / "image")
    public = key.with_name("id_ed25519.pub").read_text()
    if not with_public_half:
        key.with_name("id_ed25519.pub").unlink()
    provider = freebsd_provider(tmp_path)
    provider.lab_dir.mkdir(parents=True)
    provider._ensure_key()
    assert provider.key_path.read_bytes() != key.read_bytes()
    provider._ensure_key(key)
    assert provider.key_path.read_bytes() == key.read_bytes()
    assert provider.key_path.stat().st_mode & 0o777 == 0o600
    assert provider.key_path.with_suffix(".pub").read_text().split()[:2] == public.split()[:2]


def test_the_accel_probe_of_a_freebsd_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from lab.providers.qemu import processes

    monkeypatch.delenv("BEAST_LAB_ACCEL", raising=False)
    provider = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", hardware=FREEBSD_HARDWARE,
                            cache_dir=tmp_path / "cache")
    monkeypatch.setattr(processes, "probe_kernel", lambda cache_dir: None)
    accel = provider._accel(freebsd_image(tmp_path), None)
    assert accel.name == "tcg" and "no Linux kernel is at hand to prove KVM" in accel.reason
    assert "BEAST_LAB_ACCEL=kvm" in accel.reason
    kernel = tmp_path / "cache" / "images" / "debian-0123456789ab" / "vmlinuz"
    kernel.parent.mkdir(parents=True)
    kernel.write_bytes(b"a kernel")
    monkeypatch.undo()
    monkeypatch.delenv("BEAST_LAB_ACCEL", raising=False)
    probed: list[Path | None] = []
    monkeypatch.setattr(processes, "choose_accel",
                        lambda k, cache, qemu: probed.append(k) or processes.Accel("kvm", "ok"))
    assert provider._accel(freebsd_image(tmp_path), None).name == "kvm" and probed == [kernel]
    forced = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", hardware=FREEBSD_HARDWARE, accel="tcg")
    assert forced._accel(freebsd_image(tmp_path), None).name == "tcg" and len(probed) == 1


# bst up --stack


@pytest.fixture
def offline_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`bst up` with everything but the host processes: argv each host's qemu would run, by host."""
    import lab.images.freebsd as freebsd_images
    import lab.providers

    image = freebsd_image(tmp_path / "cache" / "images" / "freebsd-beefbeefbeef", image_key(tmp_path / "key"))
    monkeypatch.setattr(freebsd_images, "current_freebsd_image", lambda cache_dir=None: image, raising=False)
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BEAST_LAB_ACCEL", "tcg")
    monkeypatch.setattr(lab.providers, "require_tools", lambda provider="qemu": None)
    monkeypatch.setattr("lab.providers.qemu.provider.ensure_listener", lambda provider: None)
    monkeypatch.setattr(QemuProvider, "_ensure_disks", lambda self, progress: "none")
    monkeypatch.setattr(QemuProvider, "_ensure_switch", lambda self, network: 0)
    monkeypatch.setattr(QemuProvider, "_wait_all", lambda self, hosts, progress, timeout=None: None)
    launched: dict[str, list[str]] = {}

    def launch(self, host, state, progress, extra_args=None):
        pubkey = self.key_path.with_suffix(".pub").read_text().strip()
        launched[host] = self.qemu_command(host, self._image(None), 40022, state["accel"], pubkey)

    monkeypatch.setattr(QemuProvider, "_launch", launch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.toml").write_text(default_topology_path().read_text())
    return launched


def bst(*args: str):
    from lab import cli

    return CliRunner().invoke(cli.app, [*args, "--provider", "qemu", "--topology", "lab.toml"])


def test_bst_up_stack_freebsd_builds_the_papers_device_names_and_records_the_stack(offline_up, tmp_path: Path):
    from lab import cli

    result = bst("up", "--stack", "freebsd")
    assert result.exit_code == 0, result.output
    topo = load_topology(tmp_path / "lab.toml")
    assert set(offline_up) == {"ctrl-a", "ctrl-b", "clnt-1"}
    for host, argv in offline_up.items():
        names = freebsd_names(argv)
        assert names.boot_disk == "ada0" and "-kernel" not in argv
        assert [names.nics[n] for n in topo.hosts[host].addresses] == [
            nic(i) for i in range(len(topo.hosts[host].addresses))]
    names = freebsd_names(offline_up["ctrl-b"])
    assert [names.disks[d] for d in topo.disks] == ["ada1", "ada2", "ada3", "ada4", "da0", "da1", "da2", "da3"]
    state = json.loads((tmp_path / ".lab" / "beast" / "state.json").read_text())
    assert state["stack"] == "freebsd" and state["hardware"]["sas_controller"] == "mptsas1068"
    key = tmp_path / ".lab" / "beast" / "ssh" / "id_ed25519"
    assert key.read_bytes() == (tmp_path / "key" / "id_ed25519").read_bytes()
    assert os.stat(key).st_mode & 0o777 == 0o600

    lab, _, _ = cli._provider(tmp_path / "lab.toml", "qemu")
    assert lab.stack_name == "freebsd" and lab.guest_hardware() == FREEBSD_HARDWARE

    refused = bst("up", "--stack", "linux")
    assert refused.exit_code == 2
    assert "lab beast runs the freebsd stack (chosen at bst up); use --stack freebsd" in " ".join(
        refused.output.split())
    assert bst("status", "--stack", "freebsd").exit_code == 0


def test_without_stack_the_topologys_stays_the_default(offline_up, tmp_path: Path):
    from lab import cli

    lab, _, _ = cli._provider(tmp_path / "lab.toml", "qemu")
    assert lab.stack_name == "linux" and lab.guest_hardware() == LINUX_HARDWARE
    (tmp_path / "lab.toml").write_text(default_topology_path().read_text().replace(
        'stack = "auto"', 'stack = "freebsd"', 1))
    lab, _, _ = cli._provider(tmp_path / "lab.toml", "qemu")
    assert lab.stack_name == "freebsd"
    assert bst("up").exit_code == 0 and "-uuid" in offline_up["ctrl-a"]


def test_the_kvm_probe_kernel_is_a_cached_debian_one_else_the_hosts_own_readable_one(tmp_path: Path):
    from lab.qemu_leaf.accel import probe_kernel

    boot = tmp_path / "boot"
    boot.mkdir()
    assert probe_kernel(tmp_path / "cache", boot) is None
    host_kernel = boot / f"vmlinuz-{os.uname().release}"
    host_kernel.write_bytes(b"the host's kernel")
    assert probe_kernel(tmp_path / "cache", boot) == host_kernel
    cached = tmp_path / "cache" / "images" / "debian-0123456789ab" / "vmlinuz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a debian kernel")
    assert probe_kernel(tmp_path / "cache", boot) == cached


def test_the_sas_target_counts_argv_uses_agree_with_the_naming_model():
    """argv.py and the naming model each know QEMU's SCSI limits (the provider does not import the stack's
    model); they must not drift."""
    from lab.providers.qemu import argv
    from lab.stacks.freebsd.naming import SCSI_LIMITS

    for model, targets in argv.SAS_TARGETS.items():
        highest_target, _ = SCSI_LIMITS[model]
        assert targets == highest_target + 1, model
