"""The prepared FreeBSD 10.3 image: the user's converted disk booted once by the preparation dialogue, cached
by a hash of the dialogue's recipe and the source, with the private key root accepts on it.

Hardware of the preparation boot: q35, the disk on AHCI port 0 (the image's root is /dev/gpt/rootfs in its
fstab, release/tools/vmimage.subr; the kernel names the disk ada0), VGA for the loader menu, the serial port
on a unix socket with a log, no network, ``-no-reboot``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

from lab.errors import LabError, MissingToolError
from lab.images import GuestImage, default_cache_dir
from lab.images.cache import build_lock
from lab.images.freebsd.console import QemuMachine
from lab.images.freebsd.dialogue import (
    LOADER_COMMAND,
    POWER_OFF,
    STAGES,
    PreparationDialogue,
    Waits,
    preparation_commands,
)
from lab.images.freebsd.source import FREEBSD_ROOT_DEVICE, IMAGE_NAME, detect_format, ensure_freebsd_image, source_key

RECIPE_VERSION = 1
"""Bump when the preparation changes in a way the hashed recipe does not capture."""
QEMU = "qemu-system-x86_64"
MEMORY_MB = 1024
ROOT_DISK = "root.qcow2"
PRIVATE_KEY = "id_ed25519"
MANIFEST = "image.json"
CONSOLE_LOG = "console.log"
SCREEN_TEXT = "screen.txt"
CURRENT = "freebsd-current.json"
PLACEHOLDER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRECIPEPLACEHOLDERKEY beast-lab-freebsd"
ALL_STAGES = ("convert", *STAGES)

MachineFactory = Callable[[list[str], Path, Path], Any]
"""(qemu argv, work dir, socket dir) -> a machine with start(), stop(), last_screen and dialogue.Machine."""


def freebsd_recipe_hash() -> str:
    """The hash of what the preparation does (not of the source): the nightly's cache key."""
    recipe = {
        "version": RECIPE_VERSION,
        "loader": [LOADER_COMMAND, "boot -s"],
        "commands": preparation_commands(PLACEHOLDER_KEY),
        "power_off": POWER_OFF,
        "memory_mb": MEMORY_MB,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def prepared_hash(key: str) -> str:
    return hashlib.sha256(f"{freebsd_recipe_hash()}:{key}".encode()).hexdigest()


def preparation_argv(disk: Path, accel_args: list[str], socket_dir: Path, console_log: Path) -> list[str]:
    return [
        QEMU, "-machine", "q35", *accel_args, "-m", str(MEMORY_MB), "-smp", "1",
        "-nodefaults", "-vga", "std", "-display", "none", "-no-reboot",
        "-drive", f"file={disk},if=none,id=root,format=qcow2",
        "-device", "ich9-ahci,id=ahci0", "-device", "ide-hd,bus=ahci0.0,drive=root,bootindex=0",
        "-chardev", f"socket,id=console,path={socket_dir / 'serial.sock'},server=on,wait=off,logfile={console_log}",
        "-serial", "chardev:console",
        "-qmp", f"unix:{socket_dir / 'qmp.sock'},server=on,wait=off",
    ]


def qemu_machine(argv: list[str], work_dir: Path, socket_dir: Path) -> QemuMachine:
    return QemuMachine(argv, socket_dir / "qmp.sock", socket_dir / "serial.sock",
                       work_dir / CONSOLE_LOG, work_dir / "qemu.log")


def prepared_image(image_dir: Path, expected_hash: str | None = None) -> GuestImage | None:
    """The prepared image in ``image_dir`` if its manifest (written last) matches and its files exist."""
    try:
        manifest = json.loads((image_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    disk, key = image_dir / ROOT_DISK, image_dir / PRIVATE_KEY
    if expected_hash is not None and manifest.get("prepared_hash") != expected_hash:
        return None
    if manifest.get("prepared_hash") is None or not disk.is_file() or not key.is_file():
        return None
    return GuestImage(name=IMAGE_NAME, root_disk=disk, kernel=None, initrd=None,
                      recipe_hash=manifest["prepared_hash"], root_device=FREEBSD_ROOT_DEVICE, ssh_key=key)


def current_freebsd_image(cache_dir: Path | None = None) -> GuestImage | None:
    """The FreeBSD image prepared last (``bst image freebsd``), or None."""
    images = (Path(cache_dir) if cache_dir else default_cache_dir()) / "images"
    try:
        current = json.loads((images / CURRENT).read_text())
        return prepared_image(images / current["dir"], current["prepared_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_current(image_dir: Path, image: GuestImage) -> None:
    current = image_dir.parent / CURRENT
    tmp = current.with_name(current.name + f".{os.getpid()}")
    tmp.write_text(json.dumps({"dir": image_dir.name, "prepared_hash": image.recipe_hash}) + "\n")
    os.replace(tmp, current)


def make_key_pair(path: Path) -> str:
    """An ed25519 key pair at ``path`` (and ``path``.pub); its public line."""
    if shutil.which("ssh-keygen") is None:
        raise MissingToolError("ssh-keygen not found: install with `apt-get install -y openssh-client`")
    result = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "beast-lab-freebsd",
                             "-f", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"ssh-keygen could not make {path}: {result.stderr.strip() or 'no output'}")
    return path.with_name(path.name + ".pub").read_text().strip()


class _StageProgress:
    """One progress task per stage; each ends when the next begins."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        if progress is not None:
            for stage in ALL_STAGES:
                self.tasks[stage] = progress.add_task(f"FreeBSD: {stage}", total=1, start=False)
        self.current: str | None = None

    def __call__(self, stage: str) -> None:
        if self.progress is None:
            return
        if self.current is not None:
            self.progress.update(self.tasks[self.current], completed=1)
        self.current = stage
        self.progress.start_task(self.tasks[stage])

    def finish(self) -> None:
        if self.progress is not None:
            for task in self.tasks.values():
                self.progress.remove_task(task)


def prepare_freebsd_image(
    source: Path, cache_dir: Path | None = None, progress: Progress | None = None, accel: str | None = None,
    force: bool = False, machine_factory: MachineFactory | None = None, waits: Waits | None = None,
) -> GuestImage:
    """The user's FreeBSD 10.3 image converted, then prepared by one unattended boot; cached and made current."""
    source = Path(source).expanduser()
    detect_format(source)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    wanted = prepared_hash(source_key(source))
    image_dir = cache_dir / "images" / f"freebsd-{wanted[:12]}"
    if not force and (image := prepared_image(image_dir, wanted)):
        _record_current(image_dir, image)
        return image
    stages = _StageProgress(progress)
    try:
        stages("convert")
        converted = ensure_freebsd_image(source, cache_dir, None, force)
        with build_lock(image_dir.with_name(image_dir.name + ".lock")):
            if force or not (image := prepared_image(image_dir, wanted)):
                _boot_once(converted.root_disk, image_dir, wanted, cache_dir, accel, stages,
                           machine_factory or qemu_machine, waits or Waits(), source)
                image = prepared_image(image_dir, wanted)
                assert image is not None
    finally:
        stages.finish()
    _record_current(image_dir, image)
    return image


def _boot_once(converted: Path, image_dir: Path, wanted: str, cache_dir: Path, accel: str | None,
               stages: _StageProgress, machine_factory: MachineFactory, waits: Waits, source: Path) -> None:
    """Prepare a copy of ``converted`` into ``image_dir``; on failure keep only the evidence, in ``.failed``."""
    work = image_dir.with_name(f".{image_dir.name}.build-{os.getpid()}")
    failed = image_dir.with_name(image_dir.name + ".failed")
    for stale in image_dir.parent.glob(f".{image_dir.name}.build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)
    work.mkdir(parents=True)
    socket_dir = Path(tempfile.mkdtemp(prefix="beast-freebsd-"))
    machine = None
    try:
        shutil.copyfile(converted, work / ROOT_DISK)
        public_key = make_key_pair(work / PRIVATE_KEY)
        argv = preparation_argv(work / ROOT_DISK, _accel_args(accel, cache_dir), socket_dir, work / CONSOLE_LOG)
        machine = machine_factory(argv, work, socket_dir)
        evidence = f"{failed / CONSOLE_LOG} and {failed / SCREEN_TEXT}"
        try:
            machine.start()
            PreparationDialogue(machine, public_key, evidence, stages, waits).run()
        except BaseException:
            failed.mkdir(parents=True, exist_ok=True)
            if (work / CONSOLE_LOG).exists():
                shutil.copyfile(work / CONSOLE_LOG, failed / CONSOLE_LOG)
            else:
                (failed / CONSOLE_LOG).write_text("")
            (failed / SCREEN_TEXT).write_text("\n".join(getattr(machine, "last_screen", []) or []) + "\n")
            raise
        finally:
            machine.stop()
        for leftover in ("qemu.log",):
            (work / leftover).unlink(missing_ok=True)
        manifest = {"name": IMAGE_NAME, "source": str(source), "prepared_hash": wanted,
                    "recipe_hash": freebsd_recipe_hash(), "root_device": FREEBSD_ROOT_DEVICE,
                    "ssh_key": PRIVATE_KEY}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(image_dir, ignore_errors=True)
        os.rename(work, image_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _accel_args(accel: str | None, cache_dir: Path) -> list[str]:
    from lab.qemu_leaf.accel import Accel, choose_accel, probe_kernel

    if accel is not None:
        if accel not in ("kvm", "tcg"):
            raise LabError(f"unknown accelerator {accel!r}: use kvm or tcg")
        return Accel(accel, "given").qemu_args
    return choose_accel(probe_kernel(cache_dir), cache_dir).qemu_args
