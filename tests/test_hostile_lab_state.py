"""Hostile input, round two: a qemu lab's state.json is data anyone may have edited. A list for an object, a
string for a port, a port of 10**30, NaN, nesting too deep, bytes that are not UTF-8, a symlink or a FIFO in
its place: each is one line naming the file, the field and the way out (bst down), never a traceback or a hang,
and a link is never followed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.labdir import read_pidfile
from lab.providers.qemu.state import STATE_VERSION, STATE_WAY_OUT, read_state

ROOT = Path(__file__).resolve().parents[1]
HOST = {"pid": 4242, "ssh_port": 2222, "accel": "tcg", "hostid": "0a0b0c0d",
        "macs": {"management": "52:54:00:00:00:01"}, "image_hash": "abc", "started_at": 1.7e9,
        "pidfile": "/lab/vm/ctrl-a/qemu.pid", "qmp": "/lab/qmp.sock",
        "console_log": "/lab/console.log", "overlay": "/lab/overlay.qcow2"}
GOOD = {"version": STATE_VERSION, "updated_at": 1.7e9, "lab": "beast", "stack": "linux", "accel": "tcg",
        "image": {"name": "debian", "recipe_hash": "abc", "kernel": None}, "hosts": {"ctrl-a": HOST},
        "networks": {"private": {"socket": "/lab/net/private", "mgmt": "/lab/net/private.mgmt", "pid": 99}},
        "disks": {"d00": {"path": "/lab/disks/d00.raw", "size_mb": 256, "serial": "beast-d00"}}}


def lab_with(tmp_path: Path, text: str | bytes) -> tuple[Path, Path]:
    lab = tmp_path / "lab"
    lab.mkdir(exist_ok=True)
    path = lab / "state.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return lab, path


def refused(lab: Path, path: Path) -> str:
    with pytest.raises(LabError) as err:
        read_state(lab, path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"lab state {path}: ") and text.endswith(STATE_WAY_OUT), text
    return text


def test_a_typed_state_is_read(tmp_path):
    assert read_state(*lab_with(tmp_path, json.dumps(GOOD))) == GOOD


def test_no_state_or_another_version_is_no_state(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    assert read_state(lab, lab / "state.json") == {}
    assert read_state(tmp_path / "missing", tmp_path / "missing" / "state.json") == {}
    assert read_state(*lab_with(tmp_path, json.dumps({**GOOD, "version": 2}))) == {}


def with_field(path: tuple[str, ...], value) -> str:
    state = json.loads(json.dumps(GOOD))
    node = state
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(state)


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "it holds a list, not an object"),
    ('"state"', "it holds a string, not an object"),
    ("null", "it holds null, not an object"),
    ("12", "it holds a number out of range, not an object"),
    (with_field(("hosts",), []), "field hosts is a list, not an object"),
    (with_field(("hosts", "ctrl-a"), 5), "field hosts.ctrl-a is a number out of range, not an object"),
    (with_field(("hosts", "ctrl-a", "ssh_port"), "22"), "field hosts.ctrl-a.ssh_port is a string, which it cannot be"),
    (with_field(("hosts", "ctrl-a", "ssh_port"), 10**30), "field hosts.ctrl-a.ssh_port is a number out of range"),
    (with_field(("hosts", "ctrl-a", "ssh_port"), True), "field hosts.ctrl-a.ssh_port is a boolean"),
    (with_field(("hosts", "ctrl-a", "pid"), -1), "field hosts.ctrl-a.pid is a number out of range"),
    (with_field(("networks", "private", "pid"), 0), None),
    (with_field(("hosts", "ctrl-a", "macs"), ["x"]), "field hosts.ctrl-a.macs is a list"),
    (with_field(("networks", "private", "pid"), 2**40), "field networks.private.pid is a number out of range"),
    (with_field(("disks", "d00", "size_mb"), "256"), "field disks.d00.size_mb is a string"),
    (with_field(("stack",), ["linux"]), "field stack is a list"),
    (with_field(("image",), {"name": 1}), "field image is an object, which it cannot be"),
    (with_field(("updated_at",), 1e300), "field updated_at is a number out of range"),
    (with_field(("updated_at",), 7), None),
    (json.dumps(GOOD).replace("1700000000.0", "NaN", 1), "it is not valid JSON (it holds NaN"),
    (json.dumps(GOOD).replace("2222", "1" * 5000, 1), "it is not valid JSON (it holds a number this reader refuses"),
    ("[" * 100_000 + "]" * 100_000, "it is not valid JSON (it is nested too deeply to read)"),
    ('{"version": 1, "extra": ' + "[" * 500 + "]" * 500 + "}", None),
    ("{not json", "it is not valid JSON (Expecting property name"),
    (b'{"version": 1, "lab": "\xff"}', "it is not UTF-8 (byte 0xff at offset 23)"),
])
def test_a_state_of_the_wrong_shape_is_one_line(tmp_path, text, message):
    lab, path = lab_with(tmp_path, text)
    if message is None:
        read_state(lab, path)
        return
    assert message in refused(lab, path)


def test_a_symlinked_state_is_never_followed(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(GOOD))
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "state.json").symlink_to(outside)
    assert "it is a symlink, not a file; it is not read" in refused(lab, lab / "state.json")


def test_a_fifo_in_place_of_the_state_is_one_line_not_a_hang(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    os.mkfifo(lab / "state.json")
    assert "it is a FIFO, not a file" in refused(lab, lab / "state.json")


def test_a_directory_in_place_of_the_state_is_one_line(tmp_path):
    lab = tmp_path / "lab"
    (lab / "state.json").mkdir(parents=True)
    assert "it is a directory, not a file" in refused(lab, lab / "state.json")


def bst_in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def test_bst_status_on_a_damaged_state_says_so_and_bst_down_is_the_way_out(tmp_path):
    lab = tmp_path / ".lab" / "beast"
    lab.mkdir(parents=True)
    (lab / "state.json").write_text('{"version": 1, "hosts": {"ctrl-a": {"ssh_port": "22"}}}')
    status = bst_in(tmp_path, "status", "--provider", "qemu")
    assert status.returncode == 2, status.stdout + status.stderr
    lines = status.stderr.strip().splitlines()
    assert len(lines) == 1 and "field hosts.ctrl-a.ssh_port is a string" in lines[0] and "run bst down" in lines[0]
    down = bst_in(tmp_path, "down", "--provider", "qemu")
    assert down.returncode == 0, down.stderr
    assert not (lab / "state.json").exists()


@pytest.mark.parametrize(("content", "pid"), [("4242\n", 4242), ("9" * 5000, None), ("٤٢", None), ("-1", None),
                                              ("", None), ("12 34", None)])
def test_a_pid_file_holds_a_pid_or_nothing(tmp_path, content, pid):
    (tmp_path / "qemu.pid").write_text(content)
    assert read_pidfile(tmp_path / "qemu.pid") == pid


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "missing"])
def test_a_pid_file_that_is_not_a_file_is_no_pid_and_never_a_wait(tmp_path, kind):
    (tmp_path / "elsewhere").write_text("4242\n")
    path = tmp_path / "vm" / "qemu.pid"
    path.parent.mkdir()
    {"symlink": lambda: path.symlink_to(tmp_path / "elsewhere"), "fifo": lambda: os.mkfifo(path),
     "directory": path.mkdir, "missing": lambda: None}[kind]()
    assert read_pidfile(path) is None


KERNEL = Path("/boot/vmlinuz-test")


@pytest.fixture
def probe(monkeypatch):
    """choose_accel with a fixed key and a probe that records each run."""
    from lab.qemu_leaf import accel

    runs: list[Path] = []
    monkeypatch.delenv("BEAST_LAB_ACCEL", raising=False)
    monkeypatch.setattr(accel, "_boot_id", lambda: "boot")
    monkeypatch.setattr(accel, "_qemu_version", lambda qemu: "QEMU 8")
    monkeypatch.setattr(accel, "probe_kvm", lambda kernel, qemu: runs.append(kernel) or (False, "no /dev/kvm"))
    return runs


KEY = {"boot_id": "boot", "qemu": "QEMU 8", "kernel": str(KERNEL)}


@pytest.mark.parametrize("content", ["[]", "null", '{"key": 1}', json.dumps({"key": KEY, "ok": "yes", "reason": 5}),
                                     json.dumps({"key": KEY, "ok": True}), "NaN", "[" * 100_000, "\udcff"])
def test_a_probe_cache_of_another_shape_is_probed_again_not_a_traceback(tmp_path, probe, content):
    from lab.qemu_leaf.accel import choose_accel

    (tmp_path / "kvm-probe.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    assert choose_accel(KERNEL, tmp_path).name == "tcg" and probe == [KERNEL]
    assert json.loads((tmp_path / "kvm-probe.json").read_text())["reason"] == "no /dev/kvm"


def test_a_probe_cache_this_boot_is_used(tmp_path, probe):
    from lab.qemu_leaf.accel import choose_accel

    (tmp_path / "kvm-probe.json").write_text(json.dumps({"key": KEY, "ok": True, "reason": "KVM ran a kernel"}))
    assert choose_accel(KERNEL, tmp_path).name == "kvm" and probe == []


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
def test_a_probe_cache_that_is_not_a_plain_file_is_never_read_or_written_through(tmp_path, probe, kind):
    from lab.qemu_leaf.accel import choose_accel

    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"key": KEY, "ok": True, "reason": "planted"}))
    cache = tmp_path / "cache"
    cache.mkdir()
    {"symlink": lambda: (cache / "kvm-probe.json").symlink_to(outside),
     "fifo": lambda: os.mkfifo(cache / "kvm-probe.json"),
     "hardlink": lambda: os.link(outside, cache / "kvm-probe.json")}[kind]()
    accel = choose_accel(KERNEL, cache)
    assert "planted" not in accel.reason or kind == "hardlink"
    assert json.loads(outside.read_text())["reason"] == "planted"
