"""The FreeBSD 10.3 guest: a disk image or Vagrant box the user supplies, converted once to qcow2.

FreeBSD 10.3 cannot be built here, so the lab takes the user's qcow2/raw/vmdk image or a Vagrant
``.box`` (VirtualBox: box.ovf + *.vmdk; libvirt: metadata.json + box.img) and caches a qcow2 copy.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from rich.markup import escape
from rich.progress import Progress

from lab.errors import LabError, MissingToolError
from lab.images import GuestImage, default_cache_dir
from lab.images.cache import build_lock

IMAGE_NAME = "freebsd-10.3"
ROOT_DISK = "root.qcow2"
MANIFEST = "image.json"
HEAD_BYTES_HASHED = 4 * 1024 * 1024
FREEBSD_ROOT_DEVICE = "/dev/ada0"
"""FreeBSD 10.3 boxes mount their root from ada0: attach the disk to an AHCI controller."""

DISK_FORMATS = ("qcow2", "vmdk", "raw")
ARCHIVE_FORMATS = ("tar", "tar.gz")


def detect_format(path: Path) -> str:
    """One of qcow2, vmdk, raw, tar, tar.gz, judged by the file's first bytes, never its name."""
    path = Path(path)
    if not path.is_file():
        raise LabError(
            f"FreeBSD image {path} does not exist: set the FreeBSD image path in the lab config "
            f"to a qcow2/raw/vmdk image or a Vagrant .box"
        )
    with open(path, "rb") as f:
        head = f.read(1024)
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as inner:
                inner_head = inner.read(512)
        except (OSError, EOFError):
            inner_head = b""
        if len(inner_head) >= 262 and inner_head[257:262] == b"ustar":
            return "tar.gz"
        raise LabError(f"{path} is gzip-compressed but not a Vagrant box: decompress it (gunzip) and point at the disk")
    if head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"BZh"):
        raise LabError(f"{path} is xz/bzip2-compressed: decompress it (unxz/bunzip2) and point at the disk image")
    if head[510:512] == b"\x55\xaa" or head[512:520] == b"EFI PART":
        return "raw"
    raise LabError(
        f"{path} is not a qcow2, vmdk or raw (MBR/GPT) disk image nor a Vagrant box "
        f"(starts with {head[:8].hex()}): point the config at the FreeBSD 10.3 disk image or .box"
    )


def box_disk_member(archive: tarfile.TarFile, box: Path) -> tarfile.TarInfo:
    """The disk inside a Vagrant box: the largest *.vmdk (VirtualBox) or box.img (libvirt)."""
    files = [m for m in archive.getmembers() if m.isfile()]
    names = {Path(m.name).name for m in files}
    disks = [m for m in files if m.name.lower().endswith(".vmdk")]
    if not disks and "metadata.json" in names:
        disks = [m for m in files if Path(m.name).name == "box.img"]
    if not disks:
        raise LabError(
            f"{box} is a tar archive but no Vagrant box with a disk (no *.vmdk, no metadata.json + box.img): "
            f"use a virtualbox or libvirt box"
        )
    return max(disks, key=lambda m: m.size)


def extract_box_disk(box: Path, dest_dir: Path) -> Path:
    """Extract only the box's disk into ``dest_dir``, under its base name (no path from the archive)."""
    with tarfile.open(box, "r:*") as archive:
        member = box_disk_member(archive, box)
        source = archive.extractfile(member)
        if source is None:
            raise LabError(f"cannot read {member.name} from {box}: the box is damaged; download it again")
        dest = dest_dir / Path(member.name).name
        with source, open(dest, "wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
    return dest


def qemu_img_convert_command(source: Path, source_format: str, dest: Path) -> list[str]:
    if source_format not in DISK_FORMATS:
        raise ValueError(f"not a disk format: {source_format}")
    return ["qemu-img", "convert", "-f", source_format, "-O", "qcow2", str(source), str(dest)]


def source_key(path: Path) -> str:
    """Identity of the user's file: size, mtime and a sha256 of its head (cheap on multi-GB files)."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(HEAD_BYTES_HASHED))
    key = f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()}"
    return hashlib.sha256(key.encode()).hexdigest()


def cached_freebsd_image(image_dir: Path, key: str) -> GuestImage | None:
    try:
        manifest = json.loads((image_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    disk = image_dir / ROOT_DISK
    if manifest.get("source_key") != key or not disk.is_file():
        return None
    return GuestImage(
        name=IMAGE_NAME, root_disk=disk, kernel=None, initrd=None, recipe_hash=key, root_device=FREEBSD_ROOT_DEVICE
    )


def ensure_freebsd_image(
    source: Path, cache_dir: Path | None = None, progress: Progress | None = None, force: bool = False
) -> GuestImage:
    """The qcow2 copy of the user's FreeBSD image or box, converting it on first use."""
    source = Path(source).expanduser()
    source_format = detect_format(source)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = source_key(source)
    image_dir = cache_dir / "images" / f"freebsd-{key[:12]}"
    if not force and (image := cached_freebsd_image(image_dir, key)):
        return image
    if shutil.which("qemu-img") is None:
        raise MissingToolError("qemu-img not found: install with `apt-get install -y qemu-utils`")
    with build_lock(image_dir.with_name(image_dir.name + ".lock")):
        if not force and (image := cached_freebsd_image(image_dir, key)):
            return image
        work_dir = image_dir.with_name(f".{image_dir.name}.build-{os.getpid()}")
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        task = progress.add_task(f"FreeBSD image from {escape(source.name)}", total=None) if progress else None
        try:
            disk, disk_format = source, source_format
            if source_format in ARCHIVE_FORMATS:
                disk = extract_box_disk(source, work_dir)
                disk_format = detect_format(disk)
                if disk_format not in DISK_FORMATS:
                    raise LabError(f"the disk inside {source} is itself an archive: unpack the box and use its disk")
            command = qemu_img_convert_command(disk, disk_format, work_dir / ROOT_DISK)
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise LabError(f"qemu-img could not convert {disk} ({disk_format}): {detail}")
            if disk != source:
                disk.unlink()
            manifest = {"name": IMAGE_NAME, "source": str(source), "source_format": source_format, "source_key": key}
            (work_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            shutil.rmtree(image_dir, ignore_errors=True)
            os.rename(work_dir, image_dir)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            if progress and task is not None:
                progress.remove_task(task)
    image = cached_freebsd_image(image_dir, key)
    assert image is not None
    return image
