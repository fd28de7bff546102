"""Hostile input, round two: the files the fence listener reads from the lab directory (launch.json, the
topology copy it names, the state's image record, requests.jsonl) are data: a link is never followed, a FIFO
never waited on, a name never leads out of fence/, and a wrong shape is one line, never a traceback."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.fence import read_fence_log
from lab.providers.qemu import QemuProvider
from lab.providers.qemu.fence.power import ProviderPower, provider_of
from lab.topology import default_topology_path, load_topology


def fence_files(lab: Path, launch: object | None = None) -> Path:
    fence = lab / "fence"
    fence.mkdir(parents=True, exist_ok=True)
    (fence / "topology.toml").write_text(default_topology_path().read_text())
    hardware = asdict(QemuProvider(load_topology(), lab_dir=lab).guest_hardware())
    launch = {"qemu": "qemu-system-x86_64", "hardware": hardware, "topology": "topology.toml"} if launch is None \
        else launch
    (fence / "launch.json").write_text(json.dumps(launch))
    return fence


def test_launch_json_describes_the_lab(tmp_path):
    fence_files(tmp_path)
    provider = provider_of(tmp_path)
    assert provider.qemu == "qemu-system-x86_64" and set(provider.topology.hosts) == {"ctrl-a", "ctrl-b", "clnt-1"}


@pytest.mark.parametrize(("launch", "why"), [
    ([], "it records no topology file and qemu as text"),
    ({"qemu": 5, "topology": "topology.toml", "hardware": {}}, "it records no topology file and qemu as text"),
    ({"qemu": "q", "topology": "../../outside.toml", "hardware": {}}, "is outside"),
    ({"qemu": "q", "topology": "/etc/hostname", "hardware": {}}, "is outside"),
])
def test_a_launch_json_of_another_shape_or_leading_out_is_one_line(tmp_path, launch, why):
    (tmp_path / "outside.toml").write_text(default_topology_path().read_text())
    fence_files(tmp_path / "lab", launch)
    with pytest.raises(LabError, match="launch.json cannot describe the lab") as err:
        provider_of(tmp_path / "lab")
    assert why in str(err.value) and "\n" not in str(err.value) and str(err.value).endswith("run `bst up` again")


@pytest.mark.parametrize("kind", ["symlink", "fifo", "deep"])
def test_a_launch_json_that_is_a_link_a_fifo_or_too_deep_is_one_line(tmp_path, kind):
    fence = fence_files(tmp_path / "lab")
    launch = fence / "launch.json"
    outside = tmp_path / "outside.json"
    outside.write_text(launch.read_text())
    launch.unlink()
    {"symlink": lambda: launch.symlink_to(outside), "fifo": lambda: os.mkfifo(launch),
     "deep": lambda: launch.write_text("[" * 100_000)}[kind]()
    with pytest.raises(LabError, match="launch.json cannot describe the lab"):
        provider_of(tmp_path / "lab")


def test_a_state_without_a_whole_image_record_cannot_start_a_host(tmp_path):
    provider = QemuProvider(load_topology(), lab_dir=tmp_path)
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "image": {"name": "debian"}}))
    with pytest.raises(LabError, match="records no guest image; start the lab with `bst up`"):
        ProviderPower(provider).on("ctrl-a")


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_fence_log_that_is_not_a_file_is_one_line(tmp_path, kind):
    path = tmp_path / "requests.jsonl"
    (tmp_path / "elsewhere").write_text("")
    os.mkfifo(path) if kind == "fifo" else path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LabError, match=f"requests.jsonl is a {'FIFO' if kind == 'fifo' else 'symlink'}, not a file"):
        read_fence_log(path)


@pytest.mark.parametrize("line", ["[" * 100_000, '{"epoch": NaN}', "\udcff"])
def test_a_fence_log_line_json_does_not_allow_is_one_line(tmp_path, line):
    path = tmp_path / "requests.jsonl"
    path.write_bytes((line + "\n").encode("utf-8", "surrogateescape"))
    with pytest.raises(LabError, match="line 1 is not a fence request"):
        read_fence_log(path)


def test_a_lab_given_relative_to_the_working_directory_is_read(tmp_path, monkeypatch):
    """The lab directory is `.lab/<name>` under the project: its fence files are found from a relative path."""
    lab = tmp_path / ".lab" / "beast"
    fence = fence_files(lab)
    (fence / "requests.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    assert set(provider_of(Path(".lab/beast")).topology.hosts) == {"ctrl-a", "ctrl-b", "clnt-1"}
    assert read_fence_log(Path(".lab/beast/fence/requests.jsonl")) == []
