"""Any lab directory, however shaped: a lab's state.json, its pid files and its snapshots' manifests give a
value or one LabError line, never another exception, never a hang, and nothing outside the lab directory is
read into a value or written.

Hypothesis builds the lab directories: random JSON (huge integers, NaN, deep nesting, wrong shapes) in place
of the state, a host's record, a pid or a manifest, and each file as a regular file, a symlink inside or out,
a FIFO, a directory where a file belongs, or nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hostile_support import one_line_or_value, snapshot
from hostile_support import write_entry as place
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lab.providers.qemu import QemuProvider
from lab.providers.snapshot import MANIFEST, human_size, mismatch
from lab.topology import load_topology

WHAT = "reading the lab"
SECRET_PORT = 4321
TOPOLOGY = load_topology()

NUMBERS = (st.integers() | st.integers(min_value=10**300, max_value=10**3000) | st.floats()
           | st.sampled_from([1e300, -1e300, 0.0, 1714000000.0, 2222, 4242]))
JSON_VALUES = st.recursive(st.none() | st.booleans() | NUMBERS | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=8)
HOST_RECORDS = st.fixed_dictionaries({}, optional={
    name: JSON_VALUES for name in ("pid", "ssh_port", "accel", "hostid", "macs", "image_hash", "started_at")})
STATES = JSON_VALUES | st.fixed_dictionaries({"version": st.sampled_from([1, 1, 1, 2, "1", None, 10**400])}, optional={
    "hosts": JSON_VALUES | st.dictionaries(st.sampled_from(["ctrl-a", "ctrl-b", "clnt-1", "x"]),
                                           HOST_RECORDS | JSON_VALUES, max_size=3),
    "networks": JSON_VALUES, "disks": JSON_VALUES, "image": JSON_VALUES, "stack": JSON_VALUES,
    "accel": JSON_VALUES, "updated_at": NUMBERS, "hardware": JSON_VALUES})
MANIFEST_FIELDS = ("name", "created_utc", "provider", "lab", "lab_dir", "topology_source", "topology_hash",
                   "image_name", "image_hash", "accel", "disk_cache", "hosts", "files", "argv", "timings")
TYPED_MANIFEST = {"version": 1, **{name: "x" for name in MANIFEST_FIELDS}, "hosts": ["ctrl-a"],
                  "files": {"ctrl-a.state": 12}, "argv": {"ctrl-a": ["qemu"]}, "timings": {"total_s": 1.5}}
MANIFESTS = JSON_VALUES | st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, True, 1.0, 10**400])},
    optional={name: st.text(max_size=6) | JSON_VALUES for name in MANIFEST_FIELDS}) | st.builds(
    lambda name, value: {**TYPED_MANIFEST, name: value}, st.sampled_from(sorted(TYPED_MANIFEST)),
    st.sampled_from([{"a": 10**30}, {"a": -1}, {"a": 1e300}, {"a": 10**400}, ["x"], "x", 3]) | JSON_VALUES
) | st.just(TYPED_MANIFEST)
RAW = st.sampled_from(["[" * 50_000, "9" * 5000, "NaN", '{"version": 1, "hosts": NaN}', "", "{"]).map(str.encode)
RAW |= st.sampled_from([b"\xff\xfe not utf-8", b'{"version": 1, "lab": "\xc3"}'])
CONTENT = st.one_of(STATES.map(lambda v: json.dumps(v).encode()), RAW)
KINDS = st.sampled_from(["regular"] * 5 + ["symlink-in", "symlink-out", "fifo", "directory", "missing"])
PIDS = st.sampled_from([b"4242\n", b"1\n", b"9" * 5000, b"-1", b"", "٤٢".encode(), b"\xff", b"99999999999\n"])

LABS = st.fixed_dictionaries({
    "state": CONTENT, "state_kind": KINDS,
    "pid": PIDS, "pid_kind": KINDS, "vm_linked": st.sampled_from([False, False, False, True]),
    "manifest": st.one_of(MANIFESTS.map(lambda v: json.dumps(v).encode()), RAW), "manifest_kind": KINDS,
    "snapshot_linked": st.sampled_from([False, False, False, True]),
})


def write_entry(path: Path, kind: str, content: bytes, outside: Path) -> None:
    place(path, kind, content, path.parent / f".{path.name}.elsewhere", outside / "secret.json")


def build(root: Path, shape: dict) -> tuple[Path, Path]:
    """The lab directory ``root/lab`` the shape describes, and a sibling folder the lab must never touch:
    its secret.json is a typed state whose SSH port no reader may return."""
    lab, outside = root / "lab", root / "sibling"
    (outside / "vm" / "ctrl-a").mkdir(parents=True)
    (outside / "snapshot").mkdir()
    secret = {"version": 1, "hosts": {"ctrl-a": {"ssh_port": SECRET_PORT}}, "name": "s1"}
    (outside / "secret.json").write_text(json.dumps(secret))
    (outside / "vm" / "ctrl-a" / "qemu.pid").write_text(f"{os.getpid()}\n")
    (outside / "snapshot" / MANIFEST).write_text(json.dumps(secret))
    lab.mkdir()
    write_entry(lab / "state.json", shape["state_kind"], shape["state"], outside)
    if shape["vm_linked"]:
        (lab / "vm").symlink_to(outside / "vm")
    else:
        write_entry(lab / "vm" / "ctrl-a" / "qemu.pid", shape["pid_kind"], shape["pid"], outside)
    if shape["snapshot_linked"]:
        (lab / "snapshots").mkdir()
        (lab / "snapshots" / "s1").symlink_to(outside / "snapshot")
    else:
        write_entry(lab / "snapshots" / "s1" / MANIFEST, shape["manifest_kind"], shape["manifest"], outside)
    return lab, outside


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(shape=LABS)
def test_any_lab_directory_gives_a_value_or_one_line(tmp_path_factory, shape):
    lab, outside = build(tmp_path_factory.mktemp("hostile-lab"), shape)
    before = snapshot(outside)
    provider = QemuProvider(TOPOLOGY, lab)

    state = one_line_or_value(provider.load_state, WHAT)
    if state is not None:
        event("a state")
        assert isinstance(state, dict)
        assert SECRET_PORT not in {h.get("ssh_port") for h in state.get("hosts", {}).values()}
    statuses = one_line_or_value(provider.status, WHAT)
    if statuses is not None:
        assert all(s.pid is None and s.ssh_port != SECRET_PORT for s in statuses)
    assert one_line_or_value(provider.recorded_stack, WHAT) is None or isinstance(provider.recorded_stack(), str)

    manifests = one_line_or_value(provider.snapshots, WHAT) or []
    for manifest in manifests:
        event("a manifest")
        assert manifest.name != "s1" or not shape["snapshot_linked"]
        human_size(manifest.size_bytes)
        f"{manifest.timings.get('total_s', 0):.1f}"
        mismatch(manifest, TOPOLOGY, None, "qemu")
    one_line_or_value(lambda: provider.save_state({"hosts": {}}), WHAT)
    assert snapshot(outside) == before, "reading or writing the lab touched a file outside its directory"
