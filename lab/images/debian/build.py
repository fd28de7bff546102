"""One whole build of the Debian image: checks the host, runs the stages with a progress display, and
renames the finished directory into the cache with its manifest (the log kept on failure).

Must not know the stages' commands (see chroot.py) or decide whether a build is needed (see __init__.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lab.errors import LabError, MissingToolError
from lab.images.debian.cache import IMAGE_NAME, MANIFEST
from lab.images.debian.chroot import BuildLog, DebianImageBuild, StageFailed
from lab.images.debian.mounts import remove_build_tree, unmount_all_under
from lab.images.debian.recipe import DebianRecipe

BUILD_LOG = "build.log"


def check_build_host() -> None:
    if os.geteuid() != 0:
        raise LabError("building the Debian guest image needs root (debootstrap, chroot): run it as root")
    tools = {
        "debootstrap": "debootstrap",
        "qemu-img": "qemu-utils",
        "mkfs.ext4": "e2fsprogs",
        "chroot": "coreutils",
        "mount": "mount",
    }
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        names = ", ".join(t for t, p in tools.items() if p in missing)
        raise MissingToolError(f"{names} not found: install with `apt-get install -y {' '.join(missing)}`")


def build_debian_image(recipe: DebianRecipe, image_dir: Path, progress: Progress | None = None) -> None:
    """Build into a temp dir beside ``image_dir`` and rename it into place when complete.

    The caller holds the build lock. On failure the log is kept as ``<image_dir>.failed.log``.
    """
    work_dir = image_dir.with_name(f".{image_dir.name}.build-{os.getpid()}")
    failed_log = image_dir.with_name(image_dir.name + ".failed.log")
    remove_build_tree(work_dir)
    work_dir.mkdir(parents=True)
    owns_progress = progress is None
    if progress is None:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<18}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=Console(stderr=True),
        )
        progress.start()
    log = BuildLog(work_dir / BUILD_LOG, progress)
    build = DebianImageBuild(recipe, work_dir, log)
    log.note(f"building {image_dir.name} (recipe {recipe.hash()}) from {build.mirror}")
    stages = recipe.stages()
    tasks = {s.name: progress.add_task(s.name, total=1, start=False, detail="") for s in stages}
    steps = {
        "kernel": build.kernel,
        "zfs-dkms": build.zfs,
        "storage tools": build.storage_tools,
        "cluster": build.cluster,
        "identity service": build.identity_service,
    }
    started = time.monotonic()
    current = ""

    def stage(name: str, step) -> None:
        nonlocal current
        current = name
        log.task = tasks[name]
        log.note(f"=== stage {name}")
        progress.start_task(tasks[name])
        stage_started = time.monotonic()
        step()
        progress.update(tasks[name], completed=1, detail=f"{time.monotonic() - stage_started:.0f} s")
        log.task = None

    try:
        try:
            stage("debootstrap", build.debootstrap)
            with build.chroot_mounts():
                for name, step in steps.items():
                    stage(name, step)
        finally:
            unmount_all_under(build.rootfs)
        stage("root filesystem", build.root_filesystem)
        stage("qcow2", build.qcow2)
        manifest = {
            "name": IMAGE_NAME,
            "recipe_hash": recipe.hash(),
            "kernel_release": build.kernel_release,
            "root_device": "/dev/vda",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - started),
            "mirror": build.mirror,
        }
        log.note(f"built in {manifest['build_seconds']} s")
        log.close()
        (work_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if image_dir.exists():
            remove_build_tree(image_dir)
        os.rename(work_dir, image_dir)
        failed_log.unlink(missing_ok=True)
    except BaseException as err:
        log.note(f"FAILED in stage {current}: {err!r}")
        log.close()
        try:
            shutil.copyfile(work_dir / BUILD_LOG, failed_log)
        finally:
            remove_build_tree(work_dir)
        if isinstance(err, StageFailed | OSError | subprocess.SubprocessError):
            raise LabError(f"Debian image build failed in stage '{current}' ({err}): see {failed_log}") from err
        raise
    finally:
        if owns_progress:
            progress.stop()
