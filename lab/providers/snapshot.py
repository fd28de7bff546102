"""Lab snapshots: the pure parts (names, the manifest, checks, command lines) the providers share.

A snapshot is a directory ``<lab_dir>/snapshots/<name>/``, written under a temporary name and renamed
when complete, so a directory with that name is always a whole snapshot::

    manifest.json           what was saved, from which topology and guest image, and every file's size
    <host>.state            the host's device and RAM state (a QEMU migration stream)
    <host>.qcow2            the host's root overlay
    disks/<disk>.raw        each shared disk, fully allocated like the lab's own
    ssh/id_ed25519{,.pub}   the lab key the guests were booted with (it is on their kernel command line)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.runfolder_io import NotARegularFile, loads, read_bytes
from lab.topology import Topology

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
SNAPSHOTS_DIR = "snapshots"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PARTIAL_MARK = ".partial-"
MAX_FILE_BYTES = 1 << 50
"""A snapshot file's size: at most 1 PiB (the lab's disks are capped at 1 TiB in all)."""
MAX_NUMBER = 1e12
"""A timing or version: a larger value is damage, and would overflow the float that prints it."""
LAB_DIR_TOKEN = "<lab>"
PORT_TOKEN = "<port>"


class SnapshotError(LabError):
    """A snapshot could not be taken or restored."""


class SnapshotUnusable(SnapshotError):
    """The snapshot does not exist or does not fit this lab; nothing was changed."""


def check_name(name: str) -> str:
    """The name itself, or a one-line error saying which names are allowed."""
    if not NAME_PATTERN.fullmatch(name or ""):
        raise LabError(
            f"snapshot name {name!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. provisioned)"
        )
    return name


def topology_hash(topo: Topology) -> str:
    """sha256 of the topology's content (not of where it was read from): equal labs, equal hashes."""
    content = dataclasses.asdict(topo)
    content.pop("source", None)
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Manifest:
    name: str
    created_utc: str
    provider: str
    lab: str
    lab_dir: str
    topology_source: str
    topology_hash: str
    image_name: str
    image_hash: str
    accel: str
    disk_cache: str
    hosts: list[str]
    files: dict[str, int] = field(default_factory=dict)
    """Path inside the snapshot -> size in bytes."""
    argv: dict[str, list[str]] = field(default_factory=dict)
    """Each host's qemu command line when saved, normalised by ``normalise_argv``."""
    timings: dict[str, float] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """The manifest in ``data``; ValueError naming the first field that is missing or of another type."""
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING} - set(data)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        for name in sorted(names & set(data)):
            if not _FIELD_CHECKS.get(name, _is_str)(data[name]):
                raise ValueError(f"field {name!r} has the wrong type ({type(data[name]).__name__})")
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and -MAX_NUMBER <= value <= MAX_NUMBER


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_FILE_BYTES


_FIELD_CHECKS = {
    "hosts": lambda v: isinstance(v, list) and all(map(_is_str, v)),
    "files": lambda v: isinstance(v, dict) and all(map(_is_size, v.values())),
    "argv": lambda v: isinstance(v, dict) and all(isinstance(a, list) and all(map(_is_str, a)) for a in v.values()),
    "timings": lambda v: isinstance(v, dict) and all(map(_is_number, v.values())),
    "version": _is_number,
}
"""Manifest fields that are not strings, and what each must hold: a hand-edited manifest is refused whole."""


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> Manifest:
    """The snapshot's manifest, read as data (lab.runfolder_io): neither the snapshot directory nor the file
    is followed if it is a link, a FIFO is never opened for a wait, NaN and nesting too deep are damage.
    SnapshotUnusable naming the file, what is wrong and the way out otherwise."""
    path = directory / MANIFEST
    delete = f"delete it (bst snapshot delete {directory.name})"
    try:
        raw, cut = read_bytes(directory.parent, path)
        if cut:
            raise ValueError("it is larger than a manifest can be")
        data = loads(raw.decode("utf-8"))
        if isinstance(data, dict) and data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"version {data.get('version')!r:.40}, expected {MANIFEST_VERSION}")
        return Manifest.from_json(data)
    except FileNotFoundError:
        raise SnapshotUnusable(f"snapshot {directory.name} has no {MANIFEST}; {delete}") from None
    except NotARegularFile as refusal:
        raise SnapshotUnusable(f"snapshot {directory.name}: {refusal}; {delete}") from None
    except OSError as err:
        raise SnapshotUnusable(f"snapshot {directory.name}: cannot read {path} ({err.strerror})") from None
    except (ValueError, TypeError) as err:
        raise SnapshotUnusable(
            f"snapshot {directory.name}: {path} is not a manifest this version reads ({err}); {delete} and save "
            "it again"
        ) from None


def snapshot_names(root: Path) -> list[str]:
    """Complete snapshots under ``root`` (temporary directories of a save in progress are skipped)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and NAME_PATTERN.fullmatch(p.name))


def mismatch(manifest: Manifest, topo: Topology, image_hash: str | None, provider: str) -> str | None:
    """Why this snapshot cannot be restored into this lab, with the fix; None when it fits."""
    name = manifest.name
    resave = f"restore needs the same lab: rebuild it and save again (bst snapshot save {name} --replace)"
    if manifest.provider != provider:
        return f"snapshot {name} was taken by the {manifest.provider} provider, this lab uses {provider}; {resave}"
    if manifest.topology_hash != topology_hash(topo):
        return (f"snapshot {name} was taken from another topology ({manifest.topology_source}, "
                f"{manifest.topology_hash[:12]}; now {topo.source or 'this one'}, {topology_hash(topo)[:12]}); "
                f"use --topology {manifest.topology_source}, or {resave}")
    if image_hash is not None and manifest.image_hash != image_hash:
        return (f"snapshot {name} was taken with guest image {manifest.image_hash[:12]}, the image is now "
                f"{image_hash[:12]}; {resave}")
    return None


def missing_files(directory: Path, manifest: Manifest) -> list[str]:
    """Files the manifest lists that are absent or have another size."""
    bad = []
    for rel, size in sorted(manifest.files.items()):
        path = directory / rel
        if not path.is_file() or path.stat().st_size != size:
            bad.append(rel)
    return bad


def normalise_argv(argv: list[str], lab_dir: Path) -> list[str]:
    """A qemu command line without what may differ between a save and a restore of the same lab:
    the lab directory's location and the forwarded SSH port."""
    prefix = str(lab_dir)
    result = []
    for arg in argv:
        arg = arg.replace(prefix, LAB_DIR_TOKEN)
        arg = re.sub(r"hostfwd=tcp:127\.0\.0\.1:\d+-:22", f"hostfwd=tcp:127.0.0.1:{PORT_TOKEN}-:22", arg)
        result.append(arg)
    return result


def argv_difference(saved: list[str], now: list[str]) -> str | None:
    """The first argument that differs between two normalised command lines, as ``then ... now ...``."""
    if saved == now:
        return None
    for index, (before, after) in enumerate(zip(saved, now, strict=False)):
        if before != after:
            return f"argument {index}: then {before!r}, now {after!r}"
    longer, which = (saved, "then") if len(saved) > len(now) else (now, "now")
    return f"{which} it had {abs(len(saved) - len(now))} more argument(s), from {longer[min(len(saved), len(now))]!r}"


def incoming_args(state_file: Path) -> list[str]:
    """What a restored host's qemu gets on top of its usual command line: start paused, load the state."""
    return ["-S", "-incoming", f"exec:cat {shlex.quote(str(state_file))}"]


def copy_file(source: Path, target: Path, allocated: bool) -> None:
    """Copy through a temporary name then rename; ``allocated`` keeps every block allocated (no holes),
    as the lab's shared raw disks are, otherwise zero runs become holes."""
    partial = target.with_name(target.name + ".partial")
    sparse = "--sparse=never" if allocated else "--sparse=always"
    done = subprocess.run(["cp", sparse, "--", str(source), str(partial)], capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        last = (done.stderr.strip() or "no output").splitlines()[-1]
        raise SnapshotError(f"could not copy {source} to {target}: {last}")
    partial.replace(target)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


__all__ = [
    "Manifest",
    "SnapshotError",
    "SnapshotUnusable",
    "argv_difference",
    "check_name",
    "copy_file",
    "incoming_args",
    "mismatch",
    "missing_files",
    "normalise_argv",
    "read_manifest",
    "snapshot_names",
    "topology_hash",
    "write_manifest",
]
