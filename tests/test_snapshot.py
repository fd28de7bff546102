"""Snapshot logic without VMs: names, the manifest, the checks a restore makes, command lines, copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.images import GuestImage
from lab.providers.qemu import QemuProvider
from lab.providers.snapshot import (
    Manifest,
    SnapshotUnusable,
    argv_difference,
    check_name,
    copy_file,
    incoming_args,
    mismatch,
    missing_files,
    normalise_argv,
    read_manifest,
    snapshot_names,
    topology_hash,
    write_manifest,
)
from lab.providers.virtualbox import VirtualBoxProvider
from lab.topology import default_topology_path, load_topology

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeast test@lab"


@pytest.fixture
def image(tmp_path: Path) -> GuestImage:
    cache = tmp_path / "cache"
    return GuestImage("debian-bookworm", cache / "root.qcow2", cache / "vmlinuz", cache / "initrd.img", "f00d")


@pytest.fixture
def provider(tmp_path: Path, image: GuestImage) -> QemuProvider:
    return QemuProvider(load_topology(), lab_dir=tmp_path / "lab", image=image)


def variant(tmp_path: Path, old: str, new: str, name: str = "variant.toml") -> Path:
    path = tmp_path / name
    text = default_topology_path().read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def manifest_for(provider: QemuProvider, image: GuestImage, name: str = "provisioned", **changes) -> Manifest:
    argv = {
        h: normalise_argv(provider.qemu_command(h, image, 40000, "tcg", PUBKEY), provider.lab_dir)
        for h in provider.topology.hosts
    }
    fields = dict(
        name=name, created_utc="2026-11-25T15:00:00+00:00", provider="qemu", lab="beast",
        lab_dir=str(provider.lab_dir), topology_source=provider.topology.source,
        topology_hash=topology_hash(provider.topology), image_name=image.name, image_hash=image.recipe_hash,
        accel="tcg", disk_cache="none", hosts=list(provider.topology.hosts), argv=argv,
    )
    fields.update(changes)
    return Manifest(**fields)


def store(provider: QemuProvider, manifest: Manifest, sizes: dict[str, int] | None = None) -> Path:
    """A snapshot directory as a save leaves it, with files of the given sizes."""
    directory = provider.lab_dir / "snapshots" / manifest.name
    (directory / "ssh").mkdir(parents=True)
    (directory / "ssh" / "id_ed25519.pub").write_text(PUBKEY + "\n")
    files = {"ssh/id_ed25519.pub": len(PUBKEY) + 1, **(sizes or {})}
    for rel, size in (sizes or {}).items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(b"x" * size)
    manifest.files = files
    write_manifest(directory, manifest)
    return directory


# names


@pytest.mark.parametrize("name", ["provisioned", "a", "lab-1.clean_v2", "9" * 64])
def test_good_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "has space", "x" * 65, "é"])
def test_bad_names_are_refused_saying_what_is_allowed(name):
    with pytest.raises(LabError, match="letters, digits, '.', '_' or '-'"):
        check_name(name)


def test_partial_and_deleted_directories_are_not_snapshots(tmp_path: Path):
    for name in ("provisioned", ".provisioned.partial-123", ".old.replaced-9", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_text("")
    assert snapshot_names(tmp_path) == ["b", "provisioned"]
    assert snapshot_names(tmp_path / "absent") == []


# topology hash


def test_topology_hash_is_the_content_not_the_path(tmp_path: Path):
    copy = tmp_path / "copy.toml"
    copy.write_text(default_topology_path().read_text())
    assert topology_hash(load_topology(copy)) == topology_hash(load_topology())
    changed = load_topology(variant(tmp_path, "memory_mb = 512", "memory_mb = 768"))
    assert topology_hash(changed) != topology_hash(load_topology())


# the manifest


def test_manifest_round_trips(tmp_path: Path, provider: QemuProvider, image: GuestImage):
    manifest = manifest_for(provider, image, files={"ctrl-a.state": 12}, timings={"copy_s": 1.5})
    write_manifest(tmp_path, manifest)
    again = read_manifest(tmp_path)
    assert again == manifest
    assert again.size_bytes == 12
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert {"name", "created_utc", "topology_source", "topology_hash", "image_hash", "hosts", "files"} <= set(data)


def test_unreadable_manifests_are_unusable_snapshots_with_the_fix(tmp_path: Path):
    with pytest.raises(SnapshotUnusable, match="has no manifest.json; delete it"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(SnapshotUnusable, match="not a manifest this version reads"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "name": "x"}))
    with pytest.raises(SnapshotUnusable, match="missing accel"):
        read_manifest(tmp_path)


# checks before a restore


def test_a_snapshot_of_this_lab_fits(provider: QemuProvider, image: GuestImage):
    assert mismatch(manifest_for(provider, image), provider.topology, "f00d", "qemu") is None


def test_another_topology_is_refused_naming_both_and_the_fix(tmp_path, provider: QemuProvider, image: GuestImage):
    other = load_topology(variant(tmp_path, "size_mb = 256", "size_mb = 300"))
    problem = mismatch(manifest_for(provider, image), other, "f00d", "qemu")
    assert problem is not None
    assert "taken from another topology" in problem
    assert "variant.toml" in problem and str(default_topology_path()) in problem
    assert "bst snapshot save provisioned --replace" in problem


def test_another_image_or_provider_is_refused(provider: QemuProvider, image: GuestImage):
    manifest = manifest_for(provider, image)
    assert "guest image f00d, the image is now beef" in mismatch(manifest, provider.topology, "beef", "qemu")
    assert "taken by the qemu provider" in mismatch(manifest, provider.topology, "f00d", "virtualbox")


def test_missing_or_truncated_files_are_found(tmp_path: Path):
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "b").write_bytes(b"1")
    manifest = Manifest("s", "", "qemu", "beast", "", "", "", "", "", "tcg", "none", [],
                        files={"a": 5, "b": 2, "c": 1})
    assert missing_files(tmp_path, manifest) == ["b", "c"]


# command lines


def test_command_lines_match_across_ports_and_lab_directories(tmp_path: Path, image: GuestImage):
    here = QemuProvider(load_topology(), lab_dir=tmp_path / "one", image=image)
    there = QemuProvider(load_topology(), lab_dir=tmp_path / "two", image=image)
    for host in here.topology.hosts:
        saved = normalise_argv(here.qemu_command(host, image, 40001, "tcg", PUBKEY), here.lab_dir)
        now = normalise_argv(there.qemu_command(host, image, 50002, "tcg", PUBKEY), there.lab_dir)
        assert argv_difference(saved, now) is None
        assert "<lab>/vm/" + host + "/overlay.qcow2" in " ".join(saved)
        assert not any("40001" in arg for arg in saved)


def test_a_changed_command_line_names_the_first_difference(tmp_path: Path, image: GuestImage):
    base = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", image=image)
    bigger = QemuProvider(load_topology(variant(tmp_path, "memory_mb = 512", "memory_mb = 768")),
                          lab_dir=tmp_path / "lab", image=image)
    saved = normalise_argv(base.qemu_command("clnt-1", image, 1, "tcg", PUBKEY), base.lab_dir)
    now = normalise_argv(bigger.qemu_command("clnt-1", image, 1, "tcg", PUBKEY), bigger.lab_dir)
    assert argv_difference(saved, now) == "argument 10: then '512', now '768'"
    assert "more argument" in argv_difference(saved, saved[:-2])


def test_incoming_arguments_start_paused_and_quote_the_state_file():
    args = incoming_args(Path("/labs/my lab/snapshots/p/ctrl-a.state"))
    assert args == ["-S", "-incoming", "exec:cat '/labs/my lab/snapshots/p/ctrl-a.state'"]


# copies


def test_allocated_copy_has_no_holes_and_sparse_copy_keeps_them(tmp_path: Path):
    source = tmp_path / "disk.raw"
    with open(source, "wb") as f:
        f.truncate(8 * 1024 * 1024)
        f.seek(4096)
        f.write(b"data")
    copy_file(source, tmp_path / "full.raw", allocated=True)
    copy_file(source, tmp_path / "sparse.raw", allocated=False)
    full, sparse = (tmp_path / "full.raw").stat(), (tmp_path / "sparse.raw").stat()
    assert full.st_size == sparse.st_size == 8 * 1024 * 1024
    assert full.st_blocks * 512 >= 8 * 1024 * 1024
    assert sparse.st_blocks * 512 < 1024 * 1024
    assert (tmp_path / "full.raw").read_bytes() == source.read_bytes()
    assert not list(tmp_path.glob("*.partial"))


def test_failed_copy_leaves_no_partial_file(tmp_path: Path):
    with pytest.raises(LabError, match="could not copy"):
        copy_file(tmp_path / "absent.raw", tmp_path / "target.raw", allocated=True)
    assert list(tmp_path.iterdir()) == []


# the provider's refusals (nothing is started or changed)


def test_restore_of_a_missing_snapshot_says_how_to_make_one(provider: QemuProvider):
    with pytest.raises(SnapshotUnusable, match="no snapshot provisioned in lab beast .*bst snapshot save provisioned"):
        provider.snapshot_restore("provisioned")
    assert not provider.lab_dir.exists()


def test_restore_lists_the_snapshots_there_are(provider: QemuProvider, image: GuestImage):
    store(provider, manifest_for(provider, image, name="clean"))
    with pytest.raises(SnapshotUnusable, match="snapshots here: clean"):
        provider.snapshot_restore("other")


def _of_another_topology(tmp_path: Path, provider: QemuProvider, image: GuestImage) -> None:
    other = QemuProvider(load_topology(variant(tmp_path, "size_mb = 256", "size_mb = 300")),
                         lab_dir=provider.lab_dir, image=image)
    store(provider, manifest_for(other, image))


def _with_a_short_state_file(tmp_path: Path, provider: QemuProvider, image: GuestImage) -> None:
    directory = store(provider, manifest_for(provider, image), {"ctrl-a.state": 10})
    (directory / "ctrl-a.state").write_bytes(b"short")


def _saved_with_another_command_line(tmp_path: Path, provider: QemuProvider, image: GuestImage) -> None:
    manifest = manifest_for(provider, image)
    manifest.argv["ctrl-b"] = [arg.replace("2048", "1024") for arg in manifest.argv["ctrl-b"]]
    store(provider, manifest)


@pytest.mark.parametrize(("spoil", "refusal"), [
    (_of_another_topology, "taken from another topology"),
    (_with_a_short_state_file, r"incomplete \(ctrl-a.state is missing or has another size\)"),
    (_saved_with_another_command_line, "ctrl-b's qemu command line is not the one it was saved with"),
])
def test_restore_refuses_a_snapshot_that_does_not_fit_before_touching_the_lab(
    spoil, refusal: str, tmp_path: Path, provider: QemuProvider, image: GuestImage
):
    spoil(tmp_path, provider, image)
    with pytest.raises(SnapshotUnusable, match=refusal):
        provider.snapshot_restore("provisioned")
    assert sorted(p.name for p in provider.lab_dir.iterdir()) == ["snapshots"]


def test_save_of_a_lab_that_is_not_up_creates_nothing(provider: QemuProvider):
    with pytest.raises(LabError, match="lab beast is not up"):
        provider.snapshot_save("provisioned")
    assert not provider.lab_dir.exists()


def test_list_skips_unreadable_snapshots(provider: QemuProvider, image: GuestImage):
    store(provider, manifest_for(provider, image, name="good"))
    (provider.lab_dir / "snapshots" / "broken").mkdir()
    assert [m.name for m in provider.snapshots()] == ["good"]


def test_delete_removes_the_snapshot(provider: QemuProvider, image: GuestImage):
    store(provider, manifest_for(provider, image), {"ctrl-a.state": 3})
    provider.snapshot_delete("provisioned")
    assert provider.snapshots() == []
    assert list((provider.lab_dir / "snapshots").iterdir()) == []
    with pytest.raises(LabError, match="no snapshot provisioned"):
        provider.snapshot_delete("provisioned")


def test_virtualbox_cannot_take_snapshots_yet(tmp_path: Path):
    vbox = VirtualBoxProvider(load_topology(), lab_dir=tmp_path)
    for call in (lambda: vbox.snapshot_save("x"), lambda: vbox.snapshot_restore("x"), vbox.snapshots):
        with pytest.raises(LabError, match="the virtualbox provider cannot take snapshots yet"):
            call()
