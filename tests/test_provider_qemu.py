"""The qemu command lines the provider builds from a topology, and the identities it gives hosts (offline)."""

from __future__ import annotations

import base64
import copy
import re
import tomllib
from pathlib import Path

import pytest

from lab.images import GuestImage
from lab.providers.qemu import QemuProvider, host_ids, mac_address
from lab.topology import default_topology_path, load_topology, topology_from_dict

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeast test@lab"


@pytest.fixture
def image(tmp_path: Path) -> GuestImage:
    cache = tmp_path / "cache"
    return GuestImage(
        "debian-bookworm", cache / "root.qcow2", cache / "vmlinuz", cache / "initrd.img", "f00d"
    )


@pytest.fixture
def provider(tmp_path: Path) -> QemuProvider:
    return QemuProvider(load_topology(), lab_dir=tmp_path / ".lab" / "beast")


def pairs(argv: list[str], flag: str) -> list[str]:
    """Every value given to ``flag``, in order."""
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def option(argv: list[str], flag: str) -> str:
    values = pairs(argv, flag)
    assert len(values) == 1, f"{flag} given {len(values)} times"
    return values[0]


def test_controller_command_line_from_the_papers_topology(provider: QemuProvider, image: GuestImage):
    lab = provider.lab_dir
    argv = provider.qemu_command("ctrl-a", image, 40022, "tcg", PUBKEY)

    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-accel") == "tcg,thread=multi"
    assert option(argv, "-m") == "2048" and option(argv, "-smp") == "1"
    assert "-nodefaults" in argv and option(argv, "-display") == "none" and "-daemonize" in argv
    assert option(argv, "-pidfile") == f"{lab}/vm/ctrl-a/qemu.pid"
    assert option(argv, "-qmp") == f"unix:{lab}/vm/ctrl-a/qmp.sock,server=on,wait=off"
    assert pairs(argv, "-chardev") == [
        f"socket,id=console,path={lab}/vm/ctrl-a/console.sock,server=on,wait=off,"
        f"logfile={lab}/vm/ctrl-a/console.log,logappend=on",
        f"socket,id=fence,path={lab}/fence/ctrl-a.sock,reconnect=1",
    ]
    assert option(argv, "-serial") == "chardev:console"
    assert option(argv, "-kernel") == str(image.kernel) and option(argv, "-initrd") == str(image.initrd)

    assert pairs(argv, "-drive") == [
        f"if=none,id=root,file={lab}/vm/ctrl-a/overlay.qcow2,format=qcow2,cache=writeback",
        *(
            f"if=none,id={d},file={lab}/disks/{d}.raw,format=raw,cache=none,file.locking=off"
            for d in ("d00", "d01", "d10", "d11", "f00", "f01", "f10", "f11")
        ),
    ]
    assert pairs(argv, "-device") == [
        "isa-serial,chardev=fence,index=1",
        "virtio-rng-pci",
        "virtio-blk-pci,drive=root",
        "ich9-ahci,id=ahci0",
        "virtio-scsi-pci,id=scsi0",
        "ide-hd,bus=ahci0.0,drive=d00,serial=beast-d00,share-rw=on",
        "ide-hd,bus=ahci0.1,drive=d01,serial=beast-d01,share-rw=on",
        "ide-hd,bus=ahci0.2,drive=d10,serial=beast-d10,share-rw=on",
        "ide-hd,bus=ahci0.3,drive=d11,serial=beast-d11,share-rw=on",
        "scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=f00,serial=beast-f00,share-rw=on,rotation_rate=1",
        "scsi-hd,bus=scsi0.0,channel=0,scsi-id=1,lun=0,drive=f01,serial=beast-f01,share-rw=on,rotation_rate=1",
        "scsi-hd,bus=scsi0.0,channel=0,scsi-id=2,lun=0,drive=f10,serial=beast-f10,share-rw=on,rotation_rate=1",
        "scsi-hd,bus=scsi0.0,channel=0,scsi-id=3,lun=0,drive=f11,serial=beast-f11,share-rw=on,rotation_rate=1",
        "virtio-net-pci,netdev=management,mac=52:54:00:1b:01:00",
        "virtio-net-pci,netdev=private,mac=52:54:00:1b:01:01",
        "virtio-net-pci,netdev=public,mac=52:54:00:1b:01:02",
    ]
    assert pairs(argv, "-netdev") == [
        "user,id=management,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22",
        f"vde,id=private,sock={lab}/net/private",
        f"vde,id=public,sock={lab}/net/public",
    ]


def test_kernel_command_line_carries_the_identity(provider: QemuProvider, image: GuestImage):
    append = option(provider.qemu_command("ctrl-b", image, 40023, "tcg", PUBKEY), "-append")
    hostid = provider.hostids()["ctrl-b"]
    assert append.startswith("root=/dev/vda rw console=ttyS0 ")
    assert "beast.hostname=ctrl-b" in append.split()
    assert f"beast.hostid={hostid}" in append.split()
    assert [a for a in append.split() if a.startswith("beast.if=")] == [
        "beast.if=52:54:00:1b:02:00,10.0.2.15/24",
        "beast.if=52:54:00:1b:02:01,192.168.56.11/24",
        "beast.if=52:54:00:1b:02:02,192.168.55.11/24",
    ]
    assert append.split()[-1] == "net.ifnames=0"
    key = next(a for a in append.split() if a.startswith("beast.sshkey="))
    assert base64.b64decode(key.removeprefix("beast.sshkey=")).decode() == PUBKEY


def test_client_has_no_shared_disks_and_only_the_public_nic(provider: QemuProvider, image: GuestImage):
    argv = provider.qemu_command("clnt-1", image, 40024, "tcg", PUBKEY)
    assert option(argv, "-m") == "512"
    assert pairs(argv, "-drive") == [
        f"if=none,id=root,file={provider.lab_dir}/vm/clnt-1/overlay.qcow2,format=qcow2,cache=writeback"
    ]
    assert not [
        d for d in pairs(argv, "-device") if d.startswith(("ide-hd", "scsi-hd", "ich9-ahci", "virtio-scsi"))
    ]
    assert pairs(argv, "-netdev") == [
        "user,id=management,restrict=on,hostfwd=tcp:127.0.0.1:40024-:22",
        f"vde,id=public,sock={provider.lab_dir}/net/public",
    ]


def test_kvm_command_line_uses_the_host_cpu(provider: QemuProvider, image: GuestImage):
    argv = provider.qemu_command("ctrl-a", image, 40022, "kvm", PUBKEY)
    assert option(argv, "-accel") == "kvm" and option(argv, "-cpu") == "host"


def variant_topology():
    """Seven SATA disks (two AHCI controllers), a rotational SAS disk, NICs in public-then-private order."""
    data = copy.deepcopy(tomllib.loads(default_topology_path().read_text()))
    data["lab"]["name"] = "variant"
    for i in range(3):
        data["disks"][f"d2{i}"] = {"role": "data", "bus": "sata", "size_mb": 128}
    data["disks"]["f01"]["rotational"] = True
    data["hosts"]["ctrl-b"]["addresses"] = {"public": "192.168.55.11", "private": "192.168.56.11"}
    return topology_from_dict(data, "variant")


def test_command_line_from_a_variant_topology(tmp_path: Path, image: GuestImage):
    provider = QemuProvider(variant_topology(), lab_dir=tmp_path / "lab")
    argv = provider.qemu_command("ctrl-b", image, 41000, "tcg", PUBKEY)
    devices = pairs(argv, "-device")
    assert devices.count("ich9-ahci,id=ahci0") == 1 and devices.count("ich9-ahci,id=ahci1") == 1
    ide = [d for d in devices if d.startswith("ide-hd")]
    assert [re.search(r"bus=(\S+?),", d).group(1) for d in ide] == [
        "ahci0.0",
        "ahci0.1",
        "ahci0.2",
        "ahci0.3",
        "ahci0.4",
        "ahci0.5",
        "ahci1.0",
    ]
    assert ide[-1] == "ide-hd,bus=ahci1.0,drive=d22,serial=beast-d22,share-rw=on"
    scsi = [d for d in devices if d.startswith("scsi-hd")]
    assert scsi[1] == "scsi-hd,bus=scsi0.0,channel=0,scsi-id=1,lun=0,drive=f01,serial=beast-f01,share-rw=on"
    assert all(d.endswith(",rotation_rate=1") for i, d in enumerate(scsi) if i != 1)
    lab_byte = f"{__import__('hashlib').sha256(b'variant').digest()[0]:02x}"
    assert [d for d in devices if d.startswith("virtio-net-pci")] == [
        f"virtio-net-pci,netdev=management,mac=52:54:00:{lab_byte}:02:00",
        f"virtio-net-pci,netdev=public,mac=52:54:00:{lab_byte}:02:01",
        f"virtio-net-pci,netdev=private,mac=52:54:00:{lab_byte}:02:02",
    ]
    assert pairs(argv, "-netdev")[1:] == [
        f"vde,id=public,sock={provider.lab_dir}/net/public",
        f"vde,id=private,sock={provider.lab_dir}/net/private",
    ]
    assert "hostfwd=tcp:127.0.0.1:41000-:22" in pairs(argv, "-netdev")[0]


def test_shared_disks_fall_back_to_writeback_only_when_asked(provider: QemuProvider, image: GuestImage):
    argv = provider.qemu_command("ctrl-a", image, 40022, "tcg", PUBKEY, disk_cache="writeback")
    assert all("cache=writeback" in d for d in pairs(argv, "-drive"))


def test_management_network_never_forwards_beyond_loopback(provider: QemuProvider, image: GuestImage):
    for host in provider.topology.hosts:
        user = [
            n
            for n in pairs(provider.qemu_command(host, image, 40000, "tcg", PUBKEY), "-netdev")
            if n.startswith("user,")
        ]
        assert user == ["user,id=management,restrict=on,hostfwd=tcp:127.0.0.1:40000-:22"]


def test_hostids_are_distinct_stable_and_8_hex():
    names = [f"host-{i}" for i in range(300)]
    ids = host_ids("beast", names)
    assert len(set(ids.values())) == len(names)
    assert all(re.fullmatch(r"[0-9a-f]{8}", v) for v in ids.values())
    assert host_ids("beast", names) == ids
    assert host_ids("other", names) != ids


def test_paper_hostids_differ_per_host(provider: QemuProvider):
    ids = provider.hostids()
    assert set(ids) == {"ctrl-a", "ctrl-b", "clnt-1"} and len(set(ids.values())) == 3


def test_macs_are_distinct_across_the_lab(provider: QemuProvider):
    macs = [mac for host in provider.topology.hosts for mac in provider.nic_macs(host).values()]
    assert len(macs) == len(set(macs)) == 8
    assert all(m.startswith("52:54:00:") for m in macs)
    assert mac_address("beast", 0, 0) == "52:54:00:1b:01:00"


def test_default_lab_dir_is_under_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "sub")
    assert QemuProvider(load_topology()).lab_dir == project / ".lab" / "beast"


def test_status_of_a_lab_never_created(provider: QemuProvider):
    assert [(s.name, str(s.state)) for s in provider.status()] == [
        ("ctrl-a", "absent"),
        ("ctrl-b", "absent"),
        ("clnt-1", "absent"),
    ]


def test_ssh_target_of_a_stopped_host_says_how_to_start_it(provider: QemuProvider):
    with pytest.raises(Exception, match=r"ctrl-a is not running; start the lab with `bst up`"):
        provider.ssh_target("ctrl-a")


def test_unknown_host_is_named(provider: QemuProvider):
    with pytest.raises(Exception, match=r"no host 'ctrl-c' in lab beast; hosts are: ctrl-a, ctrl-b, clnt-1"):
        provider.power_off("ctrl-c")


def test_long_lab_dir_is_refused_before_qemu_starts(tmp_path: Path):
    deep = tmp_path / ("x" * 90)
    provider = QemuProvider(load_topology(), lab_dir=deep)
    with pytest.raises(Exception, match="use a shorter lab directory"):
        provider.check_socket_paths()


def test_the_freebsd_stack_gets_e1000_lab_nics_named_like_the_paper(provider: QemuProvider, tmp_path: Path):
    from lab.stacks import get_stack

    provider.hardware = get_stack("freebsd").hardware
    image = GuestImage("any-image-name", tmp_path / "guest.qcow2", None, None, "beef", "/dev/ada0")
    devices = pairs(provider.qemu_command("ctrl-a", image, 40022, "tcg", PUBKEY), "-device")
    nics = [d for d in devices if "netdev=" in d]
    assert nics[0].startswith("virtio-net-pci,netdev=management")
    assert [n.split(",")[0] for n in nics[1:]] == ["e1000", "e1000"]
    assert nics[1].split(",")[1] == "netdev=private" and nics[2].split(",")[1] == "netdev=public"


def test_create_provider_builds_the_hardware_the_stack_declares(tmp_path: Path, image: GuestImage):
    from lab.providers import create_provider
    from lab.stacks import get_stack

    provider = create_provider(load_topology(), "qemu", hardware=get_stack("freebsd").hardware,
                               lab_dir=tmp_path / "lab", image=image)
    argv = provider.qemu_command("ctrl-a", image, 40022, "tcg", PUBKEY)
    assert [d.split(",")[0] for d in pairs(argv, "-device") if "netdev=" in d][1:] == ["e1000", "e1000"]
    assert not {"-kernel", "-initrd", "-append"} & set(argv)


def test_importing_the_provider_loads_no_ssh_library():
    import subprocess
    import sys

    code = ("import sys, lab.providers.qemu; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko', 'fabric') or m == 'lab.remote'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("stack", "lab_nic"), [("freebsd", "e1000"), ("linux", "virtio-net-pci"),
                                                ("auto", "virtio-net-pci")])
def test_the_cli_builds_the_hardware_of_the_topologys_stack(stack: str, lab_nic: str, tmp_path: Path,
                                                             image: GuestImage, monkeypatch: pytest.MonkeyPatch):
    from lab.cli import _provider

    topology = tmp_path / "lab.toml"
    text = default_topology_path().read_text()
    assert 'stack = "auto"' in text
    topology.write_text(text.replace('stack = "auto"', f'stack = "{stack}"', 1))
    monkeypatch.chdir(tmp_path)
    provider, name, _ = _provider(topology, "qemu")
    assert name == "qemu"
    argv = provider.qemu_command("ctrl-a", image, 40022, "tcg", PUBKEY)
    assert {d.split(",")[0] for d in pairs(argv, "-device") if "netdev=" in d and "management" not in d} == {lab_nic}
