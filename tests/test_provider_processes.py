"""Processes and locks: down stops only what the lab started, survives a killed harness, locks hold.

A fake qemu (a python script that "daemonizes" into a sleeping child whose command line keeps
``-pidfile PATH``, as a real daemonized qemu's does, and writes that pid file) stands in for VMs, so
these run offline in seconds; the vde switches and qemu-img are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.images import GuestImage
from lab.labdir import LabBusyError, is_owned, lab_lock, processes_of, stop_owned_process
from lab.providers.qemu import QemuProvider
from lab.topology import load_topology

FAKE_QEMU = textwrap.dedent("""\
    #!{python}
    import subprocess, sys
    args = sys.argv[1:]
    pidfile = args[args.index("-pidfile") + 1]
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "fake-qemu", "-pidfile", pidfile],
        start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    open(pidfile, "w").write(f"{{child.pid}}\\n")
""")

needs_vde = pytest.mark.skipif(
    shutil.which("vde_switch") is None or shutil.which("qemu-img") is None,
    reason="vde_switch and qemu-img are needed (apt-get install -y vde2 qemu-utils)",
)


@pytest.fixture
def fake_image(tmp_path: Path) -> GuestImage:
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(cache / "root.qcow2"), "64M"], check=True)
    for name in ("vmlinuz", "initrd.img"):
        (cache / name).write_bytes(b"not a kernel")
    return GuestImage("fake", cache / "root.qcow2", cache / "vmlinuz", cache / "initrd.img", "fake-hash")


@pytest.fixture
def fake_qemu(tmp_path: Path) -> Path:
    path = tmp_path / "fake-qemu"
    path.write_text(FAKE_QEMU.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def make_provider(tmp_path: Path, fake_image: GuestImage, fake_qemu: Path):
    made: list[QemuProvider] = []

    def make(boot_timeout_s: float = 2.0) -> QemuProvider:
        provider = QemuProvider(
            load_topology(),
            lab_dir=tmp_path / "lab",
            image=fake_image,
            boot_timeout_s=boot_timeout_s,
            accel="tcg",
            qemu=str(fake_qemu),
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.down()


# --- pid files and the cmdline check -------------------------------------------------------------


def sleeper(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *argv])


def test_down_stops_a_recorded_process_started_with_its_pidfile(tmp_path: Path):
    lab = tmp_path / "lab"
    ours_pidfile, foreign_pidfile = lab / "vm" / "ctrl-a" / "qemu.pid", lab / "vm" / "ctrl-b" / "qemu.pid"
    ours_pidfile.parent.mkdir(parents=True)
    foreign_pidfile.parent.mkdir(parents=True)
    ours = sleeper("-pidfile", str(ours_pidfile))
    foreign = subprocess.Popen(["sleep", "600"])
    try:
        ours_pidfile.write_text(f"{ours.pid}\n")
        foreign_pidfile.write_text(f"{foreign.pid}\n")
        QemuProvider(load_topology(), lab_dir=lab).down()
        assert ours.wait(timeout=10) is not None
        assert foreign.poll() is None, "a pid whose cmdline does not name the lab dir must be left alone"
        assert not (lab / "vm").exists() and (lab / "lock").exists()
    finally:
        foreign.kill()
        foreign.wait()
        ours.kill()
        ours.wait()


def test_a_recycled_pid_reading_a_lab_file_is_not_the_labs(tmp_path: Path):
    """Harm 6: the pid in qemu.pid now belongs to `tail -f <lab>/vm/ctrl-a/console.log` (and a process whose
    argv names the pid file without ``-pidfile``); down must not kill either, nor count them as the lab's."""
    lab = tmp_path / "lab"
    vm = lab / "vm" / "ctrl-a"
    vm.mkdir(parents=True)
    (vm / "console.log").write_text("boot\n")
    tail = subprocess.Popen(["tail", "-f", str(vm / "console.log")], stdout=subprocess.DEVNULL)
    reader = sleeper(str(vm / "qemu.pid"), f"-pidfile={vm / 'qemu.pid'}")
    switch_pidfile = lab / "net" / "private.pid"
    switch_pidfile.parent.mkdir(parents=True)
    try:
        time.sleep(0.2)
        (vm / "qemu.pid").write_text(f"{tail.pid}\n")
        switch_pidfile.write_text(f"{reader.pid}\n")
        assert not is_owned(tail.pid, vm / "qemu.pid")
        assert not is_owned(reader.pid, vm / "qemu.pid")
        assert processes_of(lab) == []
        QemuProvider(load_topology(), lab_dir=lab).down()
        time.sleep(0.2)
        assert tail.poll() is None and reader.poll() is None, "down killed a process the lab did not start"
    finally:
        for process in (tail, reader):
            process.kill()
            process.wait()


def test_a_process_started_with_another_pidfile_is_not_owned(tmp_path: Path):
    other = sleeper("-pidfile", str(tmp_path / "lab" / "vm" / "ctrl-b" / "qemu.pid"))
    try:
        time.sleep(0.2)
        assert not is_owned(other.pid, tmp_path / "lab" / "vm" / "ctrl-a" / "qemu.pid")
        assert is_owned(other.pid, tmp_path / "lab" / "vm" / "ctrl-b" / "qemu.pid")
        assert processes_of(tmp_path / "lab") == [other.pid]
        assert processes_of(tmp_path / "la") == [], "a sibling directory sharing a prefix is not the lab"
    finally:
        other.kill()
        other.wait()


def test_stop_owned_process_escalates_to_sigkill(tmp_path: Path):
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
            "-pidfile",
            str(tmp_path / "qemu.pid"),
        ]
    )
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert stop_owned_process(stubborn.pid, tmp_path / "qemu.pid", grace=0.5)
        assert not is_owned(stubborn.pid, tmp_path / "qemu.pid")
        assert 0.5 <= time.monotonic() - started < 5, "SIGTERM is ignored, so SIGKILL follows the grace"
    finally:
        stubborn.kill()
        stubborn.wait()


def test_is_owned_refuses_recycled_or_foreign_pids(tmp_path: Path):
    assert not is_owned(None, tmp_path)
    assert not is_owned(1, tmp_path)
    assert not is_owned(os.getpid(), tmp_path / "elsewhere" / "qemu.pid")


# --- the lock ------------------------------------------------------------------------------------


HOLD_LOCK = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from lab.labdir import lab_lock
    with lab_lock(Path(sys.argv[1]), "up"):
        print("locked", flush=True)
        time.sleep(600)
""")


def hold_lock_in_child(lab: Path) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lab)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert child.stdout.readline().strip() == "locked"
    return child


def test_second_holder_fails_at_once_and_a_dead_holder_leaves_no_stale_lock(tmp_path: Path):
    lab = tmp_path / "lab"
    child = hold_lock_in_child(lab)
    try:
        started = time.monotonic()
        with pytest.raises(LabBusyError, match=rf"lab lab is busy: bst up \(pid {child.pid}\) holds .*lock"):
            with lab_lock(lab, "up"):
                pass
        assert time.monotonic() - started < 1
    finally:
        child.kill()
        child.wait()
    with lab_lock(lab, "up"):
        assert "pid" in (lab / "lock").read_text()


@needs_vde
def test_concurrent_up_fails_at_once_with_a_clear_message(tmp_path: Path, make_provider):
    child = hold_lock_in_child(tmp_path / "lab")
    try:
        started = time.monotonic()
        with pytest.raises(LabBusyError, match="is busy: bst up"):
            make_provider().up()
        assert time.monotonic() - started < 2
    finally:
        child.kill()
        child.wait()


# --- up and down with a fake qemu ----------------------------------------------------------------


@needs_vde
def test_host_that_never_answers_ssh_fails_up_naming_it_and_its_console(tmp_path: Path, make_provider):
    provider = make_provider(boot_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(LabError) as failure:
        provider.up()
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert "\n" not in message
    for host in ("ctrl-a", "ctrl-b", "clnt-1"):
        assert f"{host} did not answer SSH on 127.0.0.1:" in message
        assert str(provider.console_log(host)) in message
    assert elapsed < 20
    assert all(s.state == "stopped" for s in provider.status()), "hosts that failed are stopped"
    left = processes_of(provider.lab_dir)
    assert len(left) == 3, "the switches and the fence listener stay recorded for `down`"
    provider.down()
    assert processes_of(provider.lab_dir) == []


@needs_vde
def test_up_on_a_lab_that_is_up_is_a_no_op(tmp_path: Path, make_provider, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("lab.guests.wait_for_ssh", lambda provider, host, deadline, progress, gone: None)
    provider = make_provider()
    provider.up()
    pids = {s.name: s.pid for s in provider.status()}
    assert all(pids.values())
    state = json.loads(provider.state_path.read_text())
    assert {h: state["hosts"][h]["pid"] for h in pids} == pids

    def no_launch(*args, **kwargs):
        raise AssertionError("up on a running lab must not launch anything")

    monkeypatch.setattr(QemuProvider, "_launch", no_launch)
    started = time.monotonic()
    make_provider().up()
    assert time.monotonic() - started < 5
    assert {s.name: s.pid for s in provider.status()} == pids
    provider.down()
    assert processes_of(provider.lab_dir) == []


UP_IN_CHILD = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from lab.images import GuestImage
    from lab.providers.qemu import QemuProvider
    from lab.topology import load_topology
    cache = Path(sys.argv[2])
    image = GuestImage("fake", cache / "root.qcow2", cache / "vmlinuz", cache / "initrd.img", "fake-hash")
    QemuProvider(load_topology(), lab_dir=sys.argv[1], image=image, boot_timeout_s=600, accel="tcg",
                 qemu=sys.argv[3]).up()
""")


@needs_vde
def test_down_after_the_harness_is_killed_mid_up(tmp_path: Path, fake_image: GuestImage, fake_qemu: Path):
    lab = tmp_path / "lab"
    harness = subprocess.Popen(
        [sys.executable, "-c", UP_IN_CHILD, str(lab), str(fake_image.root_disk.parent), str(fake_qemu)],
        cwd=Path(__file__).resolve().parents[1],
    )
    deadline = time.monotonic() + 30
    while len(list(lab.glob("vm/*/qemu.pid"))) < 3:
        assert time.monotonic() < deadline and harness.poll() is None, "up did not launch the three hosts"
        time.sleep(0.05)
    harness.send_signal(signal.SIGKILL)
    harness.wait()
    survivors = len(processes_of(lab))
    QemuProvider(load_topology(), lab_dir=lab).down()
    assert survivors >= 6, "three fake VMs (maybe a launcher too), two switches, the listener outlive the harness"
    assert processes_of(lab) == []
    assert not any((lab / name).exists() for name in ("net", "vm", "disks", "state.json", "fence"))
    with lab_lock(lab, "check"):
        pass


@needs_vde
def test_a_host_created_from_another_image_is_not_silently_recreated(make_provider, fake_image: GuestImage):
    """Its root disk holds the lab's configuration: a new image must not wipe it on a restart."""
    first = make_provider()
    with pytest.raises(LabError):
        first.up()
    overlay = first.vm_paths("ctrl-a").overlay
    assert overlay.exists()
    newer = make_provider()
    newer.image = GuestImage("fake", fake_image.root_disk, fake_image.kernel, fake_image.initrd, "newer-hash")
    with pytest.raises(LabError, match=r"ctrl-a was created from guest image fake-hash but the image is now "
                                       r"newer-hash.*bst down && bst up"):
        newer.start("ctrl-a")
    assert overlay.exists()
