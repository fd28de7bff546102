"""Hostile input, round two: a snapshot's manifest.json is data anyone may have edited. NaN, nesting too deep,
integers no float holds, bytes that are not UTF-8, a symlink (file or snapshot directory) or a FIFO in its
place: each is one line naming the snapshot, the file or field, and the way out (delete the snapshot), never
a traceback, a hang, or a read through a link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.providers.snapshot import MANIFEST, Manifest, SnapshotUnusable, human_size, read_manifest, write_manifest

GOOD = Manifest(name="s1", created_utc="2026-01-01T00:00:00+00:00", provider="qemu", lab="beast", lab_dir="/lab",
                topology_source="paper.toml", topology_hash="ab" * 32, image_name="debian", image_hash="cd" * 32,
                accel="tcg", disk_cache="none", hosts=["ctrl-a"], files={"ctrl-a.state": 12},
                argv={"ctrl-a": ["qemu"]}, timings={"total_s": 1.5})


def snapshot_with(tmp_path: Path, text: str | bytes) -> Path:
    directory = tmp_path / "snapshots" / "s1"
    directory.mkdir(parents=True)
    (directory / MANIFEST).write_bytes(text if isinstance(text, bytes) else text.encode())
    return directory


def refused(directory: Path) -> str:
    with pytest.raises(SnapshotUnusable) as err:
        read_manifest(directory)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"snapshot {directory.name}") and "bst snapshot delete s1" in text
    return text


def good_json(**changes) -> str:
    return json.dumps({**GOOD.to_json(), **changes})


def test_a_written_manifest_reads_back(tmp_path):
    directory = tmp_path / "snapshots" / "s1"
    directory.mkdir(parents=True)
    write_manifest(directory, GOOD)
    assert read_manifest(directory) == GOOD


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "it holds a JSON list, not an object"),
    (good_json(hosts="ctrl-a"), "field 'hosts' has the wrong type"),
    (good_json(files={"x": 10**30}), "field 'files' has the wrong type"),
    (good_json(files={"x": -1}), "field 'files' has the wrong type"),
    (good_json(timings={"total_s": 10**400}), "field 'timings' has the wrong type"),
    (good_json(version=True), "field 'version' has the wrong type (bool)"),
    (good_json(version=10**400), "version 1000000000"),
    (good_json().replace("1.5", "NaN"), "it holds NaN, which is not a number JSON allows"),
    (good_json().replace("1.5", "Infinity"), "it holds Infinity"),
    (good_json().replace('"ctrl-a.state": 12', '"ctrl-a.state": ' + "9" * 5000), "it holds a number this reader"),
    ("[" * 100_000 + "]" * 100_000, "it is nested too deeply to read"),
    (b'{"version": 1, "name": "\xfe"}', "'utf-8' codec can't decode byte 0xfe in position 24"),
])
def test_a_manifest_of_the_wrong_shape_is_one_line(tmp_path, text, message):
    text = refused(snapshot_with(tmp_path, text))
    assert "is not a manifest this version reads" in text and message in text


def test_a_symlinked_manifest_is_never_followed(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(good_json())
    directory = tmp_path / "snapshots" / "s1"
    directory.mkdir(parents=True)
    (directory / MANIFEST).symlink_to(outside)
    assert "manifest.json is a symlink, not a file; it is not read" in refused(directory)


def test_a_symlinked_snapshot_directory_is_never_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / MANIFEST).write_text(good_json())
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "s1").symlink_to(elsewhere)
    assert "s1 is a symlink, not a file; it is not read" in refused(tmp_path / "snapshots" / "s1")


def test_a_fifo_manifest_is_one_line_not_a_hang(tmp_path):
    directory = tmp_path / "snapshots" / "s1"
    directory.mkdir(parents=True)
    os.mkfifo(directory / MANIFEST)
    assert "manifest.json is a FIFO, not a file" in refused(directory)


def test_the_largest_size_a_manifest_may_hold_still_prints():
    assert human_size(1 << 50).endswith("GiB")
