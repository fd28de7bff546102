"""Preparing the FreeBSD 10.3 image: the VGA screen and keys through a real qemu (no disk, seconds), and
prepare_freebsd_image with the replayed FreeBSD boot (tests/fixtures/freebsd/fake_machine.py) for qemu."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from rich.progress import Progress

from lab.errors import LabError
from lab.images.freebsd import current_freebsd_image, freebsd_recipe_hash, prepare, prepare_freebsd_image
from lab.images.freebsd.console import QemuMachine, keystrokes

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "freebsd"))
from fake_machine import FakeFreeBSD  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")


@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")
def test_a_real_qemu_screen_reads_as_text_and_takes_every_key_the_dialogue_types(tmp_path):
    socket_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"beast-vga-{os.getpid()}"
    socket_dir.mkdir(exist_ok=True)
    argv = [QEMU, "-machine", "q35", "-accel", "tcg", "-nodefaults", "-vga", "std", "-display", "none",
            "-chardev", f"socket,id=console,path={socket_dir / 'serial.sock'},server=on,wait=off,"
                        f"logfile={tmp_path / 'console.log'}",
            "-serial", "chardev:console", "-qmp", f"unix:{socket_dir / 'qmp.sock'},server=on,wait=off"]
    machine = QemuMachine(argv, socket_dir / "qmp.sock", socket_dir / "serial.sock",
                          tmp_path / "console.log", tmp_path / "qemu.log")
    try:
        machine.start()
        lines: list[str] = []
        deadline = machine.now() + 20
        while machine.now() < deadline:
            lines = machine.screen()
            if any("No bootable device" in line for line in lines):
                break
            machine.sleep(0.5)
        assert len(lines) == 25
        assert lines[0].startswith("SeaBIOS")
        assert any("No bootable device" in line for line in lines), lines
        every_chord = set(keystrokes("".join(chr(c) for c in range(32, 127)) + "\n")) | {("3",), ("esc",)}
        for chord in sorted(every_chord):
            machine.press(chord)
        assert machine.running()
    finally:
        machine.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
    assert machine.process is not None and machine.process.poll() is not None


def raw_source(tmp_path: Path) -> Path:
    """A tiny raw disk with an MBR signature: what detect_format and qemu-img take as the user's image."""
    disk = tmp_path / "FreeBSD-10.3-RELEASE-amd64.raw"
    data = bytearray(1024 * 1024)
    data[510:512] = b"\x55\xaa"
    disk.write_bytes(bytes(data))
    return disk


class Factory:
    """Makes the fake machine for prepare_freebsd_image, with a real process standing in for qemu."""

    def __init__(self, **fake_options):
        self.fake_options = fake_options
        self.calls: list[list[str]] = []
        self.machines: list[FakeFreeBSD] = []

    def __call__(self, argv: list[str], work_dir: Path, socket_dir: Path) -> FakeFreeBSD:
        self.calls.append(argv)
        stand_in = subprocess.Popen(["sleep", "300"])
        machine = FakeFreeBSD(process=stand_in, console_log=work_dir / "console.log", **self.fake_options)
        self.machines.append(machine)
        return machine


needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None or shutil.which("ssh-keygen") is None,
                                    reason="qemu-img and ssh-keygen are needed")


@needs_qemu_img
def test_prepare_boots_a_copy_once_installs_its_own_key_and_records_it_as_current(tmp_path):
    source, cache = raw_source(tmp_path), tmp_path / "cache"
    factory = Factory()
    image = prepare_freebsd_image(source, cache, accel="tcg", machine_factory=factory)

    assert image.name == "freebsd-10.3" and image.kernel is None and image.initrd is None
    assert image.root_device == "/dev/ada0"
    assert image.root_disk.parent == image.ssh_key.parent
    assert image.root_disk.parent.name == f"freebsd-{image.recipe_hash[:12]}"
    assert stat.S_IMODE(image.ssh_key.stat().st_mode) == 0o600
    public = image.ssh_key.with_name(image.ssh_key.name + ".pub").read_text()
    machine = factory.machines[0]
    assert machine.files["/root/.ssh/authorized_keys"] == public.strip() + "\n"
    assert machine.process is not None and machine.process.poll() is not None
    assert current_freebsd_image(cache) == image
    manifest = json.loads((image.root_disk.parent / "image.json").read_text())
    assert manifest["prepared_hash"] == image.recipe_hash and manifest["recipe_hash"] == freebsd_recipe_hash()

    argv = factory.calls[0]
    joined = " ".join(argv)
    assert argv[:3] == ["qemu-system-x86_64", "-machine", "q35"] and "-accel tcg,thread=multi" in joined
    assert "-device ich9-ahci,id=ahci0 -device ide-hd,bus=ahci0.0,drive=root,bootindex=0" in joined
    assert "-vga std -display none" in joined and "-no-reboot" in argv
    assert "-netdev" not in argv and "-nic" not in argv
    assert "server=on,wait=off,logfile=" in joined
    disk_arg = next(a for a in argv if a.startswith("file="))
    assert ".build-" in disk_arg and str(source) not in disk_arg
    leftovers = [p.name for p in (cache / "images").iterdir()]
    assert not [n for n in leftovers if ".build-" in n or n.endswith(".failed")], leftovers


class RecordingProgress(Progress):
    def __init__(self):
        super().__init__(disable=True)
        self.started: list[str] = []

    def start_task(self, task_id):
        self.started.append(self.tasks[task_id].description)
        super().start_task(task_id)


@needs_qemu_img
def test_each_stage_is_a_progress_task_and_none_is_left_behind(tmp_path):
    progress = RecordingProgress()
    prepare_freebsd_image(raw_source(tmp_path), tmp_path / "cache", progress, "tcg", machine_factory=Factory())
    assert progress.started == ["FreeBSD: convert", "FreeBSD: boot to loader", "FreeBSD: loader",
                                "FreeBSD: single user", "FreeBSD: configure", "FreeBSD: power off"]
    assert progress.tasks == []


@needs_qemu_img
def test_a_second_call_boots_nothing(tmp_path):
    source, cache = raw_source(tmp_path), tmp_path / "cache"
    first = prepare_freebsd_image(source, cache, accel="tcg", machine_factory=Factory())

    def must_not_boot(*args):
        raise AssertionError("the cached image was prepared again")

    assert prepare_freebsd_image(source, cache, accel="tcg", machine_factory=must_not_boot) == first


@needs_qemu_img
def test_a_failed_preparation_leaves_no_image_no_process_and_keeps_the_evidence_it_names(tmp_path):
    source, cache = raw_source(tmp_path), tmp_path / "cache"
    factory = Factory(root_dirty=True)
    with pytest.raises(LabError) as caught:
        prepare_freebsd_image(source, cache, accel="tcg", machine_factory=factory)
    message = str(caught.value)
    assert "\n" not in message and "`fsck -p` failed with status 8" in message
    machine = factory.machines[0]
    assert machine.stopped and machine.process is not None and machine.process.poll() is not None
    images = cache / "images"
    failed = [p for p in images.iterdir() if p.name.endswith(".failed")]
    assert len(failed) == 1
    assert f"see {failed[0] / 'console.log'} and {failed[0] / 'screen.txt'}" in message
    assert "Enter full pathname of shell" in (failed[0] / "console.log").read_text()
    assert (failed[0] / "screen.txt").read_text().strip()
    assert sorted(p.name for p in failed[0].iterdir()) == ["console.log", "screen.txt"]
    assert not [p for p in images.iterdir() if ".build-" in p.name]
    prepared = [p for p in images.iterdir() if p.is_dir() and (p / "id_ed25519").exists()]
    assert prepared == []
    assert current_freebsd_image(cache) is None


@needs_qemu_img
def test_without_an_accel_the_preparation_probes_kvm_as_the_lab_does(tmp_path, monkeypatch):
    from lab.qemu_leaf import accel as accel_module

    asked = []

    def choose(kernel, cache_dir, *rest):
        asked.append((kernel, cache_dir))
        return accel_module.Accel("tcg", "test")

    monkeypatch.setattr(accel_module, "choose_accel", choose)
    monkeypatch.setattr(accel_module, "probe_kernel", lambda cache_dir: cache_dir / "the-probe-kernel")
    cache = tmp_path / "cache"
    prepare_freebsd_image(raw_source(tmp_path), cache, machine_factory=Factory())
    assert asked == [(cache / "the-probe-kernel", cache)]


def test_an_unknown_accel_is_refused_in_one_line(tmp_path):
    with pytest.raises(LabError, match="unknown accelerator 'hvf': use kvm or tcg"):
        prepare._accel_args("hvf", tmp_path)


def test_no_current_image_before_any_preparation(tmp_path):
    assert current_freebsd_image(tmp_path) is None
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "freebsd-current.json").write_text('{"dir": "freebsd-nothere", "prepared_hash": "x"}')
    assert current_freebsd_image(tmp_path) is None


PINNED_RECIPE_HASH = "30c2d7ba1e8f83046c11d5b24310408396258f67f8fdb6c6f083a16120575be6"
"""Changing the preparation re-prepares every cached image: update this pin (and RECIPE_VERSION if the
change is outside the hashed recipe) on purpose."""


def test_the_recipe_hash_is_pinned():
    assert freebsd_recipe_hash() == PINNED_RECIPE_HASH


def test_the_recipe_hash_is_printed_by_the_module_and_follows_the_commands(monkeypatch):
    printed = subprocess.run([sys.executable, "-m", "lab.images.freebsd"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
    assert printed.returncode == 0 and printed.stdout.strip() == freebsd_recipe_hash()
    assert len(freebsd_recipe_hash()) == 64
    refused = subprocess.run([sys.executable, "-m", "lab.images.freebsd", "extra"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
    assert refused.returncode == 2 and "unrecognized arguments: extra" in refused.stderr
    before = freebsd_recipe_hash()
    monkeypatch.setattr(prepare, "preparation_commands", lambda key: ["sync"])
    assert freebsd_recipe_hash() != before


@needs_qemu_img
@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")
def test_the_real_preparation_boot_of_a_disk_without_freebsd_fails_in_one_line_and_leaves_nothing_running(tmp_path):
    """The whole preparation path on real qemu (its argv, QMP, serial socket, screen, the stop by PID): a disk
    with no loader never shows the menu, so the bounded wait ends with the evidence it names."""
    source, cache = raw_source(tmp_path), tmp_path / "cache"
    started: list[QemuMachine] = []

    def real_qemu(argv, work_dir, socket_dir):
        started.append(prepare.qemu_machine(argv, work_dir, socket_dir))
        return started[-1]

    with pytest.raises(LabError) as caught:
        prepare_freebsd_image(source, cache, accel="tcg", machine_factory=real_qemu, waits=prepare.Waits(menu=8))
    message = str(caught.value)
    assert "\n" not in message and "no loader menu on the screen within 8 s" in message
    (failed,) = [p for p in (cache / "images").iterdir() if p.name.endswith(".failed")]
    assert f"see {failed / 'console.log'} and {failed / 'screen.txt'}" in message
    screen = (failed / "screen.txt").read_text()
    assert "SeaBIOS" in screen and ("Booting from Hard Disk" in screen or "not a bootable disk" in screen), screen
    (machine,) = started
    assert machine.process is not None and machine.process.poll() is not None
    assert current_freebsd_image(cache) is None
