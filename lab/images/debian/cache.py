"""Where a built Debian image lives in the cache, and when a directory there counts as a complete image.

A build writes the manifest last and renames its temp dir into place; this module reads that layout back.
Must not know how an image is built (see build.py) or what goes into it (see recipe.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.images import GuestImage
from lab.images.debian.mounts import remove_build_tree

IMAGE_NAME = "debian-bookworm"
ROOT_DISK = "root.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
MANIFEST = "image.json"


def image_dir_for(cache_dir: Path, recipe_hash: str) -> Path:
    return cache_dir / "images" / f"debian-{recipe_hash[:12]}"


def cached_image(image_dir: Path, recipe_hash: str) -> GuestImage | None:
    """The image in ``image_dir`` if it is complete and built from ``recipe_hash``, else None.

    A build writes the manifest last and renames its temp dir into place, so a directory without a
    matching manifest or with a missing file is never an image.
    """
    try:
        manifest = json.loads((image_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("recipe_hash") != recipe_hash:
        return None
    paths = [image_dir / ROOT_DISK, image_dir / KERNEL, image_dir / INITRD]
    if not all(p.is_file() and p.stat().st_size > 0 for p in paths):
        return None
    return GuestImage(
        name=IMAGE_NAME,
        root_disk=paths[0],
        kernel=paths[1],
        initrd=paths[2],
        recipe_hash=recipe_hash,
        root_device=manifest.get("root_device", "/dev/vda"),
    )



def remove_stale_builds(image_dir: Path) -> None:
    """Remove temp dirs left by builds that died (the caller holds the lock, so none is running)."""
    for stale in image_dir.parent.glob(f".{image_dir.name}.build-*"):
        remove_build_tree(stale)
