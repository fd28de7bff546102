"""The Debian bookworm guest image: built once by debootstrap, cached under a hash of its recipe.

The image has no boot loader: providers boot its kernel and initrd directly with the per-VM identity
on the kernel command line (see ``kernel_cmdline``), on top of a per-VM qcow2 overlay of ``root.qcow2``.

By concern: recipe.py (what goes in, and its hash), identity.py (the kernel command line), cache.py
(where an image lives and when it is complete), mounts.py, chroot.py and build.py (the build). This
module only decides whether to build, under the cache's lock.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress

from lab.errors import LabError
from lab.images import GuestImage, default_cache_dir
from lab.images.cache import build_lock
from lab.images.debian.build import build_debian_image, check_build_host
from lab.images.debian.cache import (
    INITRD,
    KERNEL,
    MANIFEST,
    ROOT_DISK,
    cached_image,
    image_dir_for,
    remove_stale_builds,
)
from lab.images.debian.chroot import host_debian_mirror
from lab.images.debian.identity import identity_cmdline, kernel_cmdline
from lab.images.debian.recipe import (
    BUILD_SCRIPT_VERSION,
    IDENTITY_SCRIPT,
    IDENTITY_UNIT,
    DebianRecipe,
    debian_recipe_hash,
)


def ensure_debian_image(
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
    recipe: DebianRecipe | None = None,
) -> GuestImage:
    """The cached Debian image for the current recipe, building it first if needed.

    A build takes 5–8 min, most of it DKMS compiling ZFS for the guest kernel.

    ``progress``: a caller's rich Progress to add the stage tasks to; by default one is shown on stderr.
    """
    recipe = recipe or DebianRecipe()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    recipe_hash = recipe.hash()
    image_dir = image_dir_for(cache_dir, recipe_hash)
    if not force:
        image = cached_image(image_dir, recipe_hash)
        if image:
            return image
    check_build_host()
    image_dir.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(image_dir.with_name(image_dir.name + ".lock")):
        if not force:
            image = cached_image(image_dir, recipe_hash)
            if image:
                return image
        remove_stale_builds(image_dir)
        build_debian_image(recipe, image_dir, progress)
    image = cached_image(image_dir, recipe_hash)
    if image is None:
        raise LabError(f"the Debian image build finished but {image_dir} is incomplete: rerun with force=True")
    return image



__all__ = [
    "BUILD_SCRIPT_VERSION",
    "IDENTITY_SCRIPT",
    "IDENTITY_UNIT",
    "INITRD",
    "KERNEL",
    "MANIFEST",
    "ROOT_DISK",
    "DebianRecipe",
    "build_debian_image",
    "cached_image",
    "check_build_host",
    "debian_recipe_hash",
    "ensure_debian_image",
    "host_debian_mirror",
    "identity_cmdline",
    "image_dir_for",
    "kernel_cmdline",
]
