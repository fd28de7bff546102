"""Guest images the providers boot: a Debian image built here, a FreeBSD image the user supplies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.environment import env_path


def default_cache_dir() -> Path:
    """Where built and converted images live, so they survive between runs and checkouts."""
    explicit = env_path("BEAST_LAB_CACHE")
    if explicit:
        return explicit
    xdg = env_path("XDG_CACHE_HOME", relative_ok=True)
    if xdg:
        return xdg / "beast-lab"
    return Path.home() / ".cache" / "beast-lab"


@dataclass(frozen=True)
class GuestImage:
    """A bootable guest: a qcow2 base (never written; VMs get overlays) and, for Linux, its kernel.

    ``kernel``/``initrd`` are set when the provider must boot with ``-kernel``/``-initrd``
    (the Debian image has no boot loader); they are None for images that boot from their disk.
    """

    name: str
    root_disk: Path
    kernel: Path | None
    initrd: Path | None
    recipe_hash: str
    root_device: str = "/dev/vda"
    ssh_key: Path | None = None
    """A private key root accepts on every VM of this image, for images prepared with their own key (the
    FreeBSD one); None: the lab's key reaches each VM on the kernel command line (the Debian one)."""
