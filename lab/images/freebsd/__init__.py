"""The FreeBSD 10.3 guest for the qemu provider: the user's image (or the FreeBSD project's, downloaded when
asked), converted to qcow2, then prepared by one unattended first boot and cached by a hash of its recipe
and source.

By concern: source.py (what the user gave, converted to qcow2), download.py (the FreeBSD project's archived
VM image, checked against its published CHECKSUM.SHA256), and the preparation boot: console.py (keys, VGA
screen and serial port of a real qemu), dialogue.py (what is typed and awaited), prepare.py (the cached
prepared image and the current one).
"""

from __future__ import annotations

from lab.images.freebsd.prepare import current_freebsd_image, freebsd_recipe_hash, prepare_freebsd_image
from lab.images.freebsd.source import (
    ARCHIVE_FORMATS,
    DISK_FORMATS,
    FREEBSD_ROOT_DEVICE,
    IMAGE_NAME,
    box_disk_member,
    cached_freebsd_image,
    detect_format,
    ensure_freebsd_image,
    extract_box_disk,
    qemu_img_convert_command,
    source_key,
)

__all__ = [
    "ARCHIVE_FORMATS",
    "DISK_FORMATS",
    "FREEBSD_ROOT_DEVICE",
    "IMAGE_NAME",
    "box_disk_member",
    "cached_freebsd_image",
    "current_freebsd_image",
    "detect_format",
    "ensure_freebsd_image",
    "extract_box_disk",
    "freebsd_recipe_hash",
    "prepare_freebsd_image",
    "qemu_img_convert_command",
    "source_key",
]
