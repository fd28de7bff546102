"""The VirtualBox provider keeps to its lab directory: a symlinked or file ``.lab/<lab>`` is refused, and
every path it writes or has VirtualBox write or delete (media, console logs, the lab key) goes through
``lab.labdir.inside``, so a symlink below the lab directory never leads a ``closemedium --delete`` or a
``createmedium`` outside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.providers.virtualbox import VirtualBoxProvider
from lab.providers.virtualbox import __main__ as cli
from lab.topology import load_topology

PAPER = load_topology()
HOSTONLYIFS = """Name:            vboxnet0
IPAddress:       192.168.56.1
NetworkMask:     255.255.255.0

Name:            vboxnet1
IPAddress:       192.168.55.1
NetworkMask:     255.255.255.0
"""


class Recorder:
    """VBoxManage answering what ``prepare`` and ``down`` ask; records every argv."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        if argv[0] == "--version":
            return "7.0.10r158379\n"
        if list(argv) == ["list", "hostonlyifs"]:
            return HOSTONLYIFS
        if argv[0] == "createmedium":
            Path(argv[3]).touch()
        return ""

    def verbs(self) -> list[str]:
        return [argv[0] for argv in self.calls]


def provider(tmp_path: Path, lab_dir: Path, vbox: Recorder | None = None) -> VirtualBoxProvider:
    conf = tmp_path / "networks.conf"
    conf.write_text("* 192.168.55.0/24 192.168.56.0/24\n")
    return VirtualBoxProvider(PAPER, lab_dir, vboxmanage=vbox or Recorder(), networks_conf=conf,
                              host_platform="linux", vagrant_factory=lambda root, env: None)


def test_a_symlinked_lab_dir_is_refused(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / ".lab").mkdir()
    (tmp_path / ".lab" / "beast").symlink_to(elsewhere)
    with pytest.raises(LabError, match=r"\.lab/beast is a symlink; the lab works only in a real directory"):
        provider(tmp_path, tmp_path / ".lab" / "beast")


def test_a_file_in_place_of_the_lab_dir_is_refused(tmp_path: Path):
    (tmp_path / ".lab").mkdir()
    (tmp_path / ".lab" / "beast").write_text("not a directory")
    with pytest.raises(LabError, match=r"\.lab/beast is a file, not a lab directory"):
        provider(tmp_path, tmp_path / ".lab" / "beast")


def test_media_are_not_created_through_a_symlinked_disks_dir(tmp_path: Path):
    lab_dir, elsewhere = tmp_path / "lab", tmp_path / "elsewhere"
    lab_dir.mkdir()
    elsewhere.mkdir()
    (lab_dir / "disks").symlink_to(elsewhere)
    vbox = Recorder()
    with pytest.raises(LabError, match=r"refusing to touch .*/lab/disks/d00\.vdi: .*/lab/disks is a symlink"):
        provider(tmp_path, lab_dir, vbox).prepare()
    assert "createmedium" not in vbox.verbs()
    assert list(elsewhere.iterdir()) == []


def test_down_deletes_no_medium_through_a_symlinked_disks_dir(tmp_path: Path):
    lab_dir, elsewhere = tmp_path / "lab", tmp_path / "elsewhere"
    lab_dir.mkdir()
    elsewhere.mkdir()
    (elsewhere / "d00.vdi").write_text("someone else's disk")
    (lab_dir / "disks").symlink_to(elsewhere)
    vbox = Recorder()
    with pytest.raises(LabError, match=r"/lab/disks is a symlink"):
        provider(tmp_path, lab_dir, vbox).down()
    assert "closemedium" not in vbox.verbs()
    assert (elsewhere / "d00.vdi").read_text() == "someone else's disk"


def test_a_console_log_linked_out_of_the_lab_is_refused_before_any_vm_boots(tmp_path: Path):
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (lab_dir / "ctrl-a.console.log").symlink_to(tmp_path / "victim")
    vbox = Recorder()
    with pytest.raises(LabError, match=r"ctrl-a\.console\.log"):
        provider(tmp_path, lab_dir, vbox).prepare()
    assert "createmedium" not in vbox.verbs()


def test_the_lab_key_is_not_written_through_a_symlinked_ssh_dir(tmp_path: Path):
    lab_dir, elsewhere = tmp_path / "lab", tmp_path / "elsewhere"
    lab_dir.mkdir()
    elsewhere.mkdir()
    (lab_dir / "ssh").symlink_to(elsewhere)
    with pytest.raises(LabError, match=r"/lab/ssh is a symlink"):
        provider(tmp_path, lab_dir).ensure_key()
    assert list(elsewhere.iterdir()) == []


def test_the_vagrantfile_helper_refuses_a_symlinked_lab_dir_in_one_line(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    assert cli.main(["--lab-dir", str(tmp_path / "link"), "export-json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {tmp_path / 'link'} is a symlink") and captured.err.count("\n") == 1
