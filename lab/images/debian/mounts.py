"""Mount points below a build directory, and deleting a build tree only once nothing is mounted in it.

A chroot build binds /proc, /sys and /dev into the tree: an ``rm -rf`` with /dev still bound would wipe
the host's device nodes. Must not know what is built there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.errors import LabError


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all_under(path: Path) -> None:
    for point in mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


def remove_build_tree(path: Path) -> None:
    """Delete a build dir, refusing while anything is mounted below it (a bind of /dev would be wiped)."""
    if not path.exists():
        return
    unmount_all_under(path)
    left = mounts_under(path)
    if left:
        raise LabError(f"cannot remove {path}: still mounted: {', '.join(left)}; unmount them and retry")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)
