"""Paths the lab deletes or writes stay inside its directory: hostile names and symlinks touch nothing else.

The topology loader refuses such names too; these tests go below it, to the provider, so the provider's
own check is what is proved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.labdir import checked_lab_dir, inside, remove_inside
from lab.providers.qemu import QemuProvider
from lab.providers.snapshot import MANIFEST, SnapshotUnusable, read_manifest
from lab.topology import load_topology


def rename_network(old: str, new: str):
    """The paper's topology with network ``old`` called ``new``, as if the loader had let it through."""
    topo = load_topology()
    topo.networks[new] = topo.networks.pop(old)
    for host in topo.hosts.values():
        if old in host.addresses:
            host.addresses[new] = host.addresses.pop(old)
    return topo


def victim_tree(root: Path) -> Path:
    victim = root / "victim"
    (victim / "keep").mkdir(parents=True)
    (victim / "keep" / "data.txt").write_text("precious\n")
    return victim


def test_a_network_named_to_walk_out_of_the_lab_deletes_nothing(tmp_path: Path):
    """Harm 1: `_ensure_switch` ran rmtree(lab/net/<name>) with the name ``../../victim``."""
    victim = victim_tree(tmp_path)
    provider = QemuProvider(rename_network("private", "../../victim"), lab_dir=tmp_path / "lab")
    with pytest.raises(LabError, match="network name '../../victim' cannot name a qemu netdev"):
        provider._ensure_switch("../../victim")
    assert (victim / "keep" / "data.txt").read_text() == "precious\n"


@pytest.mark.parametrize("name", ["pri,vate", "private,sock=/tmp/x", "-rf", "a b", ""])
def test_network_names_qemu_cannot_take_as_an_id_are_refused(tmp_path: Path, name: str):
    provider = QemuProvider(rename_network("private", name), lab_dir=tmp_path / "lab")
    with pytest.raises(LabError, match="cannot name a qemu netdev"):
        provider.switch_dir(name)
    assert not (tmp_path / "lab").exists()


def test_inside_refuses_paths_that_leave_the_root(tmp_path: Path):
    root = tmp_path / "lab"
    root.mkdir()
    assert inside(root, root / "net" / "private") == root / "net" / "private"
    assert inside(root, root / "net" / ".." / "vm") == root / "vm"
    for escape in (root / ".." / "victim", root / "net" / ".." / "..", root, tmp_path / "labx" / "a", Path("/etc")):
        with pytest.raises(LabError, match="is not inside"):
            inside(root, escape)


def test_inside_refuses_a_symlink_on_the_way(tmp_path: Path):
    root = tmp_path / "lab"
    root.mkdir()
    victim = victim_tree(tmp_path)
    (root / "vm").symlink_to(victim)
    with pytest.raises(LabError, match="is a symlink"):
        remove_inside(root, root / "vm" / "keep")
    with pytest.raises(LabError, match="is a symlink"):
        remove_inside(root, root / "vm")
    assert (victim / "keep" / "data.txt").exists() and (root / "vm").is_symlink()


def lab_with_files(directory: Path) -> None:
    for name in ("ssh", "disks", "vm", "net"):
        (directory / name).mkdir(parents=True)
        (directory / name / "file").write_text("theirs\n")
    (directory / "state.json").write_text("{}\n")


@pytest.mark.parametrize("linked", [".lab", ".lab/beast"])
def test_down_through_a_symlinked_lab_directory_is_refused(tmp_path: Path, linked: str):
    """Harm 3: `down` through a symlinked .lab/<lab> deleted ssh/, disks/, vm/, state.json in its target."""
    target = tmp_path / "elsewhere"
    lab_with_files(target / "beast" if linked == ".lab" else target)
    project = tmp_path / "project"
    (project / linked).parent.mkdir(parents=True, exist_ok=True)
    (project / linked).symlink_to(target)
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    with pytest.raises(LabError, match=r"is a symlink; the lab works only in a real directory"):
        QemuProvider(load_topology(), lab_dir=project / ".lab" / "beast").down()
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before


@pytest.mark.parametrize("as_file", [".lab", ".lab/beast"])
def test_a_lab_directory_that_is_a_file_is_refused(tmp_path: Path, as_file: str):
    (tmp_path / as_file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / as_file).write_text("not a directory\n")
    with pytest.raises(LabError, match="is a file, not a lab directory"):
        checked_lab_dir(tmp_path / ".lab" / "beast")
    assert (tmp_path / as_file).read_text() == "not a directory\n"


def test_a_symlink_inside_the_lab_is_refused_by_down_and_its_target_kept(tmp_path: Path):
    victim = victim_tree(tmp_path)
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "disks").symlink_to(victim)
    with pytest.raises(LabError, match="is a symlink"):
        QemuProvider(load_topology(), lab_dir=lab).down()
    assert (victim / "keep" / "data.txt").exists()


def test_snapshot_delete_through_a_symlinked_snapshots_dir_is_refused(tmp_path: Path):
    victim = victim_tree(tmp_path)
    (victim / "provisioned").mkdir()
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "snapshots").symlink_to(victim)
    with pytest.raises(LabError, match="is a symlink"):
        QemuProvider(load_topology(), lab_dir=lab).snapshot_delete("provisioned")
    assert (victim / "provisioned").is_dir()


@pytest.mark.parametrize(("content", "why"), [
    ("[1, 2]", "it holds a JSON list, not an object"),
    ('"text"', "it holds a JSON str, not an object"),
    ("{not json", "Expecting property name"),
    (b"\xff\xfe{}", "can't decode"),
])
def test_a_manifest_that_is_not_an_object_is_one_clear_error(tmp_path: Path, content, why):
    snapshot = tmp_path / "provisioned"
    snapshot.mkdir()
    path = snapshot / MANIFEST
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SnapshotUnusable, match=r"is not a manifest this version reads") as error:
        read_manifest(snapshot)
    assert why in str(error.value) and "\n" not in str(error.value)


GOOD_MANIFEST = {
    "name": "provisioned", "created_utc": "2026-01-01T00:00:00+00:00", "provider": "qemu", "lab": "beast",
    "lab_dir": "/x", "topology_source": "paper.toml", "topology_hash": "ab" * 32, "image_name": "debian",
    "image_hash": "cd" * 32, "accel": "tcg", "disk_cache": "none", "hosts": ["ctrl-a"],
    "files": {"ctrl-a.qcow2": 10}, "argv": {"ctrl-a": ["qemu"]}, "timings": {"total_s": 1.5}, "version": 1,
}


@pytest.mark.parametrize(("field", "value"), [
    ("files", ["ctrl-a.qcow2"]), ("files", {"ctrl-a.qcow2": "10"}), ("hosts", 3), ("hosts", [1]),
    ("argv", {"ctrl-a": "qemu -m 1"}), ("timings", {"total_s": "fast"}), ("name", ["provisioned"]),
    ("topology_hash", None),
])
def test_a_hand_edited_manifest_is_one_clear_error(tmp_path: Path, field: str, value):
    snapshot = tmp_path / "provisioned"
    snapshot.mkdir()
    assert read_manifest(_write(snapshot, GOOD_MANIFEST)).size_bytes == 10
    with pytest.raises(SnapshotUnusable, match=rf"field '{field}' has the wrong type"):
        read_manifest(_write(snapshot, {**GOOD_MANIFEST, field: value}))


def _write(snapshot: Path, data: dict) -> Path:
    (snapshot / MANIFEST).write_text(json.dumps(data))
    return snapshot


def test_a_read_only_lab_directory_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """EROFS as a read-only mount gives it (root may write anywhere else, so the error is injected)."""
    import errno

    from lab.labdir import lab_lock

    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(LabError, match=r"cannot write the lab directory .*: Read-only file system; use a writable"):
        with lab_lock(tmp_path / "lab", "up"):
            pass


def test_inside_takes_a_root_behind_a_symlink_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An ``artifacts`` link to a bigger disk is the user's choice; only what lies below the root is checked."""
    real = tmp_path / "big-disk"
    real.mkdir()
    (tmp_path / "artifacts").symlink_to(real)
    events = tmp_path / "artifacts" / "run" / "events.jsonl"
    assert inside(tmp_path / "artifacts", events) == real / "run" / "events.jsonl"
    monkeypatch.chdir(tmp_path)
    assert inside(Path("artifacts"), Path("artifacts") / "run") == real / "run"
    with pytest.raises(LabError, match="is not inside"):
        inside(Path("artifacts"), Path("artifacts") / ".." / "victim")


def test_a_run_record_keeps_its_files_inside_the_run_folder(tmp_path: Path):
    from lab.record import RunRecord

    victim = victim_tree(tmp_path)
    record = RunRecord.create(tmp_path / "artifacts", "failover")
    assert record.save("hosts/ctrl-a/dmesg.txt", "ok\n").read_text() == "ok\n"
    for relative in ("../../victim/keep/data.txt", "/etc/passwd", str(victim / "keep" / "data.txt")):
        with pytest.raises(LabError, match="is not inside"):
            record.save(relative, "overwritten\n")
    assert (victim / "keep" / "data.txt").read_text() == "precious\n"
