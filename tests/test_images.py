"""Guest images: recipe hashing, the cache, the kernel command line contract, FreeBSD image intake."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.images import GuestImage, debian, default_cache_dir, freebsd
from lab.images.debian import (
    DebianRecipe,
    cached_image,
    debian_recipe_hash,
    ensure_debian_image,
    identity_cmdline,
    image_dir_for,
    kernel_cmdline,
)
from lab.images.debian.__main__ import main as debian_main
from lab.images.debian.chroot import _debian_uris

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000000 test@lab"


# --- cache dir ------------------------------------------------------------------------------------


def test_cache_dir_prefers_beast_lab_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"


def test_cache_dir_falls_back_to_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("BEAST_LAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "beast-lab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "beast-lab"


# --- recipe hash ----------------------------------------------------------------------------------


RECIPE_HASH = "7d813e8a8eae66bc169db4e2892a273ce8f5cf3a3b60ea9a525df8ffbb292550"
"""The default recipe's hash, printed before debian.py was split into a package: a change renames the cache
directory, so every user's cached image is rebuilt (5-8 min). Change it only with the recipe, on purpose."""


def test_recipe_hash_is_stable():
    assert debian_recipe_hash() == debian_recipe_hash() == DebianRecipe().hash()
    assert len(debian_recipe_hash()) == 64


def test_recipe_hash_is_the_one_every_cached_image_is_named_by():
    assert debian_recipe_hash() == RECIPE_HASH


def test_the_recipe_hash_command_prints_the_cache_key(capsys):
    assert debian_main([]) == 0
    assert capsys.readouterr().out == RECIPE_HASH + "\n"
    assert debian_main(["extra"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    result = subprocess.run([sys.executable, "-m", "lab.images.debian"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, RECIPE_HASH + "\n")


@pytest.mark.parametrize(
    "field, value",
    [
        ("storage_packages", DebianRecipe().storage_packages + ("nvme-cli",)),
        ("zfs_packages", ("zfs-dkms",)),
        ("base_packages", DebianRecipe().base_packages[:-1]),
        ("kernel_packages", ("linux-image-cloud-amd64", "linux-headers-cloud-amd64")),
        ("suite", "trixie"),
        ("build_script_version", debian.BUILD_SCRIPT_VERSION + 1),
    ],
)
def test_recipe_hash_changes_with_the_recipe(field, value):
    assert dataclasses.replace(DebianRecipe(), **{field: value}).hash() != debian_recipe_hash()


def test_recipe_hash_changes_with_a_file_put_into_the_image():
    files = list(DebianRecipe().files)
    path, content, mode = files[0]
    files[0] = (path, content + b"\n# changed\n", mode)
    assert dataclasses.replace(DebianRecipe(), files=tuple(files)).hash() != debian_recipe_hash()


def test_recipe_hash_ignores_the_mirror(monkeypatch):
    before = debian_recipe_hash()
    monkeypatch.setattr(debian, "host_debian_mirror", lambda: "http://mirror.example/debian")
    assert debian_recipe_hash() == before


def test_recipe_ships_identity_script_and_unit():
    paths = {path for path, _, _ in DebianRecipe().files}
    assert "usr/local/sbin/beast-identity" in paths
    assert "etc/systemd/system/beast-identity.service" in paths
    unit = debian.IDENTITY_UNIT.read_text()
    for later in (
        "network-pre.target",
        "ssh.service",
        "zfs-import-cache.service",
        "zfs-import-scan.service",
        "iscsid.service",
    ):
        assert later in unit


def test_identity_script_is_valid_sh():
    subprocess.run(["sh", "-n", str(debian.IDENTITY_SCRIPT)], check=True)


# --- the cache ------------------------------------------------------------------------------------


def fake_image(image_dir: Path, recipe_hash: str) -> None:
    image_dir.mkdir(parents=True)
    for name in (debian.ROOT_DISK, debian.KERNEL, debian.INITRD):
        (image_dir / name).write_bytes(b"x")
    (image_dir / debian.MANIFEST).write_text(json.dumps({"recipe_hash": recipe_hash}))


def test_cache_hit_returns_without_building(monkeypatch, tmp_path):
    recipe_hash = debian_recipe_hash()
    image_dir = image_dir_for(tmp_path, recipe_hash)
    fake_image(image_dir, recipe_hash)

    def no_build(*args, **kwargs):
        raise AssertionError("built although cached")

    monkeypatch.setattr(debian, "build_debian_image", no_build)
    monkeypatch.setattr(debian, "check_build_host", no_build)
    started = time.monotonic()
    image = ensure_debian_image(cache_dir=tmp_path)
    assert time.monotonic() - started < 0.5
    assert image == GuestImage(
        name="debian-bookworm",
        root_disk=image_dir / "root.qcow2",
        kernel=image_dir / "vmlinuz",
        initrd=image_dir / "initrd.img",
        recipe_hash=recipe_hash,
        root_device="/dev/vda",
    )
    assert image_dir.name == f"debian-{recipe_hash[:12]}"


def test_cache_miss_builds_once_under_the_lock(monkeypatch, tmp_path):
    monkeypatch.setattr(debian, "check_build_host", lambda: None)
    builds = []

    def fake_build(recipe, image_dir, progress=None):
        assert Path(str(image_dir) + ".lock").exists()
        builds.append(image_dir)
        shutil.rmtree(image_dir, ignore_errors=True)
        fake_image(image_dir, recipe.hash())

    monkeypatch.setattr(debian, "build_debian_image", fake_build)
    first = ensure_debian_image(cache_dir=tmp_path)
    second = ensure_debian_image(cache_dir=tmp_path)
    assert first == second and len(builds) == 1
    ensure_debian_image(cache_dir=tmp_path, force=True)
    assert len(builds) == 2


@pytest.mark.parametrize("damage", ["no manifest", "other recipe", "missing kernel", "empty disk", "bad json"])
def test_half_built_or_foreign_dir_is_not_an_image(tmp_path, damage):
    recipe_hash = debian_recipe_hash()
    image_dir = image_dir_for(tmp_path, recipe_hash)
    fake_image(image_dir, recipe_hash)
    if damage == "no manifest":
        (image_dir / "image.json").unlink()
    elif damage == "other recipe":
        (image_dir / "image.json").write_text(json.dumps({"recipe_hash": "0" * 64}))
    elif damage == "missing kernel":
        (image_dir / "vmlinuz").unlink()
    elif damage == "empty disk":
        (image_dir / "root.qcow2").write_bytes(b"")
    else:
        (image_dir / "image.json").write_text("{")
    assert cached_image(image_dir, recipe_hash) is None


def test_half_built_temp_dir_is_ignored_and_removed(monkeypatch, tmp_path):
    recipe_hash = debian_recipe_hash()
    image_dir = image_dir_for(tmp_path, recipe_hash)
    stale = image_dir.with_name(f".{image_dir.name}.build-99999")
    (stale / "rootfs" / "etc").mkdir(parents=True)
    (stale / "build.log").write_text("died half way\n")
    monkeypatch.setattr(debian, "check_build_host", lambda: None)
    built = []

    def fake_build(recipe, image_dir, progress=None):
        assert not stale.exists()
        built.append(1)
        fake_image(image_dir, recipe.hash())

    monkeypatch.setattr(debian, "build_debian_image", fake_build)
    ensure_debian_image(cache_dir=tmp_path)
    assert built == [1]


def test_build_needs_root_and_debootstrap(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        ensure_debian_image(cache_dir=tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "debootstrap" else f"/usr/bin/{tool}")
    from lab.errors import MissingToolError

    with pytest.raises(MissingToolError, match=r"apt-get install -y debootstrap"):
        ensure_debian_image(cache_dir=tmp_path)


def test_mirror_read_from_deb822_and_one_line_sources():
    deb822 = "Types: deb\n# note\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    assert list(_debian_uris(deb822)) == ["http://mirror.example/debian"]
    one_line = (
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://ftp.example/debian/ bookworm main\n"
    )
    assert list(_debian_uris(one_line)) == ["http://ftp.example/debian/"]


# --- kernel command line --------------------------------------------------------------------------


def test_kernel_cmdline_contract():
    line = kernel_cmdline(
        "ctrl-a",
        "0A1B2C3D",
        [("52:54:00:BE:00:01", "10.0.2.15/24"), ("52:54:00:be:01:01", "192.168.56.10/24")],
        PUBKEY + "\n",
    )
    words = line.split(" ")
    assert words[:3] == ["root=/dev/vda", "rw", "console=ttyS0"]
    assert words[3:7] == [
        "beast.hostname=ctrl-a",
        "beast.hostid=0a1b2c3d",
        "beast.if=52:54:00:be:00:01,10.0.2.15/24",
        "beast.if=52:54:00:be:01:01,192.168.56.10/24",
    ]
    assert words[7].startswith("beast.sshkey=")
    assert base64.b64decode(words[7].removeprefix("beast.sshkey=")).decode() == PUBKEY
    assert len(words) == 8
    assert identity_cmdline("ctrl-a", "0a1b2c3d", [], PUBKEY) == " ".join(
        w for w in words[3:] if not w.startswith("beast.if=")
    )


@pytest.mark.parametrize(
    "hostname, hostid, interfaces, key, message",
    [
        ("Ctrl A", "0a1b2c3d", [], PUBKEY, "host name"),
        ("ctrl-a", "0a1b2c3", [], PUBKEY, "8 hex"),
        ("ctrl-a", "00000000", [], PUBKEY, "8 hex"),
        ("ctrl-a", "0a1b2c3d", [("52:54:00:be:00", "10.0.2.15/24")], PUBKEY, "MAC"),
        ("ctrl-a", "0a1b2c3d", [("52:54:00:be:00:01", "10.0.2.15")], PUBKEY, "prefix"),
        ("ctrl-a", "0a1b2c3d", [("52:54:00:be:00:01", "10.0.2.300/24")], PUBKEY, "ADDR/PREFIX"),
        ("ctrl-a", "0a1b2c3d", [], "", "public key"),
        ("ctrl-a", "0a1b2c3d", [], PUBKEY + "\n" + PUBKEY, "public key"),
    ],
)
def test_kernel_cmdline_rejects_bad_values(hostname, hostid, interfaces, key, message):
    with pytest.raises(LabError, match=message):
        kernel_cmdline(hostname, hostid, interfaces, key)


# --- FreeBSD images -------------------------------------------------------------------------------


def write_qcow2_header(path: Path) -> Path:
    path.write_bytes(b"QFI\xfb" + struct.pack(">I", 3) + b"\0" * 504)
    return path


def write_box(path: Path, members: dict[str, bytes], compress: bool) -> Path:
    with tarfile.open(path, "w:gz" if compress else "w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"QFI\xfb" + b"\0" * 100, "qcow2"),
        (b"KDMV" + b"\1" * 100, "vmdk"),
        (b"# Disk DescriptorFile\nversion=1\n", "vmdk"),
        (b"\0" * 510 + b"\x55\xaa", "raw"),
        (b"\0" * 512 + b"EFI PART" + b"\0" * 504, "raw"),
    ],
)
def test_freebsd_format_detected_by_magic_not_name(tmp_path, content, expected):
    misleading = tmp_path / "image.box"
    misleading.write_bytes(content)
    assert freebsd.detect_format(misleading) == expected


def test_freebsd_box_formats_detected(tmp_path):
    plain = write_box(tmp_path / "a.qcow2", {"box.ovf": b"<ovf/>", "disk.vmdk": b"KDMV"}, compress=False)
    packed = write_box(tmp_path / "b.img", {"box.ovf": b"<ovf/>", "disk.vmdk": b"KDMV"}, compress=True)
    assert freebsd.detect_format(plain) == "tar"
    assert freebsd.detect_format(packed) == "tar.gz"


def test_freebsd_missing_and_unknown_files_fail_in_one_line(tmp_path):
    with pytest.raises(LabError, match="does not exist") as missing:
        freebsd.detect_format(tmp_path / "nope.qcow2")
    assert "\n" not in str(missing.value)
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"hello world" * 100)
    with pytest.raises(LabError, match="not a qcow2, vmdk or raw") as unknown:
        freebsd.detect_format(junk)
    assert "\n" not in str(unknown.value)
    gz = tmp_path / "disk.img.gz"
    gz.write_bytes(gzip.compress(b"\0" * 2048))
    with pytest.raises(LabError, match="gunzip"):
        freebsd.detect_format(gz)


@pytest.mark.parametrize("compress", [False, True])
def test_freebsd_virtualbox_box_disk_extracted(tmp_path, compress):
    box = write_box(
        tmp_path / "freebsd.box",
        {"./box.ovf": b"<ovf/>", "./Vagrantfile": b"", "./freebsd-disk001.vmdk": b"KDMV" + b"\0" * 2000},
        compress,
    )
    out = tmp_path / "out"
    out.mkdir()
    disk = freebsd.extract_box_disk(box, out)
    assert disk == out / "freebsd-disk001.vmdk"
    assert freebsd.detect_format(disk) == "vmdk"


def test_freebsd_libvirt_box_disk_extracted(tmp_path):
    box = write_box(
        tmp_path / "libvirt.box",
        {"metadata.json": b'{"format":"qcow2"}', "box.img": b"QFI\xfb" + b"\0" * 60},
        compress=True,
    )
    out = tmp_path / "out"
    out.mkdir()
    assert freebsd.detect_format(freebsd.extract_box_disk(box, out)) == "qcow2"


def test_freebsd_box_without_disk_rejected(tmp_path):
    box = write_box(tmp_path / "empty.box", {"Vagrantfile": b""}, compress=False)
    with pytest.raises(LabError, match=r"no \*\.vmdk"):
        freebsd.extract_box_disk(box, tmp_path)


def test_freebsd_box_member_paths_cannot_escape(tmp_path):
    box = write_box(tmp_path / "evil.box", {"../../evil.vmdk": b"KDMV"}, compress=False)
    out = tmp_path / "out"
    out.mkdir()
    assert freebsd.extract_box_disk(box, out) == out / "evil.vmdk"


def test_freebsd_conversion_command(tmp_path):
    assert freebsd.qemu_img_convert_command(Path("/in/d.vmdk"), "vmdk", Path("/c/root.qcow2")) == [
        "qemu-img",
        "convert",
        "-f",
        "vmdk",
        "-O",
        "qcow2",
        "/in/d.vmdk",
        "/c/root.qcow2",
    ]
    with pytest.raises(ValueError):
        freebsd.qemu_img_convert_command(Path("x"), "tar", Path("y"))


def test_freebsd_source_key_tracks_size_mtime_and_content(tmp_path):
    image = write_qcow2_header(tmp_path / "a.qcow2")
    key = freebsd.source_key(image)
    assert freebsd.source_key(image) == key
    os.utime(image, ns=(1, 1))
    assert freebsd.source_key(image) != key


def test_freebsd_image_converted_once_and_cached(monkeypatch, tmp_path):
    box = write_box(tmp_path / "fb.box", {"box.ovf": b"<ovf/>", "disk.vmdk": b"KDMV" + b"\0" * 100}, compress=True)
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        Path(command[-1]).write_bytes(b"QFI\xfb")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(freebsd.source.subprocess, "run", fake_run)
    monkeypatch.setattr(freebsd.source.shutil, "which", lambda tool: "/usr/bin/qemu-img")
    image = freebsd.ensure_freebsd_image(box, cache_dir=tmp_path / "cache")
    again = freebsd.ensure_freebsd_image(box, cache_dir=tmp_path / "cache")
    assert image == again and len(commands) == 1
    assert commands[0][:6] == ["qemu-img", "convert", "-f", "vmdk", "-O", "qcow2"]
    assert image.kernel is None and image.initrd is None and image.root_disk.read_bytes() == b"QFI\xfb"
    assert {p.name for p in image.root_disk.parent.iterdir()} == {"image.json", "root.qcow2"}


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_freebsd_real_conversion_of_a_raw_disk(tmp_path):
    raw = tmp_path / "fb.raw"
    with open(raw, "wb") as f:
        f.write(b"\0" * 510 + b"\x55\xaa")
        f.truncate(1024 * 1024)
    image = freebsd.ensure_freebsd_image(raw, cache_dir=tmp_path / "cache")
    assert freebsd.detect_format(image.root_disk) == "qcow2"


# --- the real thing -------------------------------------------------------------------------------


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh(port: int, key: Path, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.vm
def test_debian_image_boots_with_its_identity(tmp_path):
    """Slow: builds the image if it is not cached (5–8 min), then boots it (0.5–3.5 min under TCG)."""
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen") if shutil.which(t) is None]
    recipe_hash = debian_recipe_hash()
    if cached_image(image_dir_for(default_cache_dir(), recipe_hash), recipe_hash) is None:
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            missing.append("root and debootstrap to build the image")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    image = ensure_debian_image()
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    overlay = tmp_path / "ctrl-a.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.root_disk), str(overlay)], check=True
    )
    port = free_local_port()
    mac = "52:54:00:be:00:01"
    append = kernel_cmdline("ctrl-a", "0a1b2c3d", [(mac, "10.0.2.15/24")], key.with_suffix(".pub").read_text())
    pidfile = tmp_path / "qemu.pid"
    console = tmp_path / "console.log"
    subprocess.run(
        [
            "qemu-system-x86_64",
            "-accel",
            "tcg,thread=multi",
            "-m",
            "1024",
            "-smp",
            "1",
            "-nodefaults",
            "-kernel",
            str(image.kernel),
            "-initrd",
            str(image.initrd),
            "-append",
            append,
            "-drive",
            f"file={overlay},format=qcow2,if=virtio",
            "-netdev",
            f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device",
            f"virtio-net-pci,netdev=mgmt,mac={mac}",
            "-serial",
            f"file:{console}",
            "-monitor",
            "none",
            "-display",
            "none",
            "-daemonize",
            "-pidfile",
            str(pidfile),
        ],
        check=True,
        timeout=60,
    )
    qemu_pid = int(pidfile.read_text().strip())
    try:
        deadline = time.monotonic() + 420
        while True:
            try:
                if ssh(port, key, "true", timeout=20).returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            assert time.monotonic() < deadline, "no SSH after 420 s; console:\n" + console.read_text()[-3000:]
            time.sleep(2)
        assert ssh(port, key, "systemctl is-active beast-identity.service").stdout.strip() == "active"
        assert ssh(port, key, "hostname").stdout.strip() == "ctrl-a"
        assert ssh(port, key, "hostid").stdout.strip() == "0a1b2c3d"
        assert "inet 10.0.2.15/24" in ssh(port, key, "ip -4 -o address show").stdout
        zfs = ssh(port, key, "modprobe zfs && zpool version", timeout=120)
        assert zfs.returncode == 0 and "zfs-2" in zfs.stdout, zfs.stderr
        targetcli = ssh(port, key, "targetcli ls", timeout=120)
        assert targetcli.returncode == 0 and "iscsi" in targetcli.stdout, targetcli.stderr
        assert ssh(port, key, "iscsiadm --version").returncode == 0
        assert (
            ssh(port, key, "cat /etc/iscsi/initiatorname.iscsi").stdout.strip()
            == "InitiatorName=iqn.2016-01.local.sss:ctrl-a"
        )
    finally:
        try:
            os.kill(qemu_pid, 15)
            for _ in range(50):
                os.kill(qemu_pid, 0)
                time.sleep(0.1)
            os.kill(qemu_pid, 9)
        except ProcessLookupError:
            pass


# --- the identity script, against a fake root ------------------------------------------------------


def write_stub(bin_dir: Path, name: str, body: str) -> None:
    stub = bin_dir / name
    stub.write_text(f"#!/bin/sh\n{body}\n")
    stub.chmod(0o755)


@pytest.fixture
def fake_guest(tmp_path):
    """A guest tree the identity script writes into, with zgenhostid/ip/ssh-keygen stubbed."""
    root = tmp_path / "root"
    for directory in ("proc/sys/kernel", "etc/iscsi", "etc/ssh", "sys/class/net/ens2", "sys/class/net/ens3"):
        (root / directory).mkdir(parents=True)
    (root / "proc/sys/kernel/hostname").write_text("localhost\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\told-name\n")
    (root / "sys/class/net/ens2/address").write_text("52:54:00:be:00:01\n")
    (root / "sys/class/net/ens3/address").write_text("52:54:00:be:01:01\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    write_stub(bin_dir, "zgenhostid", f'echo "zgenhostid $*" >> {calls}; printf "%s" "$4" > "$3"')
    write_stub(bin_dir, "ip", f'echo "ip $*" >> {calls}')
    write_stub(bin_dir, "ssh-keygen", f'echo "ssh-keygen $*" >> {calls}')
    return root, bin_dir, calls


def run_identity(root: Path, bin_dir: Path, cmdline: str) -> subprocess.CompletedProcess:
    (root / "proc/cmdline").write_text(cmdline + "\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "BEAST_IDENTITY_ROOT": str(root), "BEAST_IDENTITY_NIC_WAIT": "1"}
    return subprocess.run(["sh", str(debian.IDENTITY_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_identity_script_applies_the_cmdline(fake_guest):
    root, bin_dir, calls = fake_guest
    cmdline = kernel_cmdline(
        "ctrl-a", "0a1b2c3d", [("52:54:00:BE:00:01", "10.0.2.15/24"), ("52:54:00:be:01:01", "192.168.56.10/24")], PUBKEY
    )
    result = run_identity(root, bin_dir, cmdline)
    assert result.returncode == 0, result.stderr
    assert (root / "etc/hostname").read_text() == "ctrl-a\n"
    assert (root / "proc/sys/kernel/hostname").read_text() == "ctrl-a\n"
    assert (root / "etc/hosts").read_text() == "127.0.0.1\tlocalhost\n127.0.1.1\tctrl-a\n"
    assert (root / "etc/hostid").read_text() == "0a1b2c3d"
    assert (root / "root/.ssh/authorized_keys").read_text() == PUBKEY + "\n"
    assert (root / "root/.ssh/authorized_keys").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/iscsi/initiatorname.iscsi").read_text() == "InitiatorName=iqn.2016-01.local.sss:ctrl-a\n"
    assert calls.read_text().splitlines() == [
        f"zgenhostid -f -o {root}/etc/hostid 0a1b2c3d",
        "ip link set dev ens2 up",
        "ip address replace 10.0.2.15/24 dev ens2",
        "ip link set dev ens3 up",
        "ip address replace 192.168.56.10/24 dev ens3",
        f"ssh-keygen -A -f {root}",
    ]


def test_identity_script_keeps_existing_initiator_name_and_host_keys(fake_guest):
    root, bin_dir, calls = fake_guest
    (root / "etc/iscsi/initiatorname.iscsi").write_text("InitiatorName=iqn.custom:x\n")
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("key")
    result = run_identity(root, bin_dir, "root=/dev/vda rw beast.hostname=ctrl-b")
    assert result.returncode == 0, result.stderr
    assert (root / "etc/iscsi/initiatorname.iscsi").read_text() == "InitiatorName=iqn.custom:x\n"
    assert not calls.exists()


def test_identity_script_fails_when_a_nic_never_appears(fake_guest):
    root, bin_dir, calls = fake_guest
    (root / "sys/class/net/ens3/address").write_text("52:54:00:00:00:99\n")
    result = run_identity(
        root, bin_dir, "beast.if=52:54:00:be:00:01,10.0.2.15/24 beast.if=52:54:00:be:01:01,192.168.56.10/24"
    )
    assert result.returncode == 1
    assert "no NIC with MAC 52:54:00:be:01:01 came up" in result.stderr
    assert "ip address replace 10.0.2.15/24 dev ens2" in calls.read_text()


def test_a_restarted_controller_restores_no_lio_target_at_boot():
    from lab.images.debian.recipe import DebianRecipe

    assert "rtslib-fb-targetctl.service" in DebianRecipe().disabled_units
