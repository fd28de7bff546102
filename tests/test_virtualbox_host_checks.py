"""Host checks before a VirtualBox lab boots, one line each: Vagrant/VirtualBox pairs, networks.conf, macOS.

The version pairs are Vagrant's own (hashicorp/vagrant meta.rb at each release tag), the range rule is
Vagrant's validate_hostonly_ip! (VirtualBox >= 6.1.28, not Windows, not macOS with VirtualBox 7).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.providers.virtualbox import VirtualBoxProvider
from lab.providers.virtualbox.compat import check_vagrant_drives, host_only_ranges_apply, parse_vagrant_version
from lab.providers.virtualbox.vboxmanage import VBoxManageError, check_host_only_ranges
from lab.topology import load_topology

PAPER = load_topology()
NO_VBOXNETCTL = ("`VBoxManage hostonlyif create` failed: VBoxManage: error: Failed to create the host-only adapter")
"""vagrant#12967: what `hostonlyif create` answers on macOS with VirtualBox 7.0.2."""


@pytest.mark.parametrize("vbox, platform, applies", [
    ((6, 1, 26), "linux", False),
    ((6, 1, 28), "linux", True),
    ((7, 1, 4), "linux", True),
    ((7, 0, 10), "sunos5", True),
    ((6, 1, 40), "darwin", True),
    ((7, 0, 0), "darwin", False),
    ((7, 0, 10), "win32", False),
    ((6, 1, 40), "cygwin", False),
])
def test_networks_conf_rule_is_vagrants(vbox, platform, applies):
    assert host_only_ranges_apply(vbox, platform) is applies


@pytest.mark.parametrize("platform, vbox", [("win32", (7, 0, 10)), ("darwin", (7, 1, 4))])
def test_no_networks_conf_is_needed_where_virtualbox_has_no_range_rule(platform, vbox, tmp_path: Path):
    check_host_only_ranges(PAPER, vbox, None, tmp_path / "networks.conf", platform=platform)


def test_macos_before_virtualbox_7_still_needs_networks_conf(tmp_path: Path):
    with pytest.raises(LabError) as err:
        check_host_only_ranges(PAPER, (6, 1, 40), None, tmp_path / "networks.conf", platform="darwin")
    assert str(err.value).endswith("* 192.168.55.0/24 192.168.56.0/24")


@pytest.mark.parametrize("vbox, vagrant, platform, message", [
    ((7, 1, 4), (2, 3, 4), "linux",
     "Vagrant 2.3.4 cannot drive VirtualBox 7.1.4: VirtualBox 7.1 needs Vagrant 2.4.2 or later; upgrade Vagrant "
     "(https://developer.hashicorp.com/vagrant/install) or use a VirtualBox this Vagrant knows"),
    ((7, 0, 10), (2, 3, 1), "linux", "Vagrant 2.3.1 cannot drive VirtualBox 7.0.10: VirtualBox 7.0 needs Vagrant "
                                     "2.3.2 or later"),
    ((7, 2, 0), (2, 4, 8), "linux", "VirtualBox 7.2 needs Vagrant 2.4.9 or later"),
    ((7, 3, 0), (2, 4, 9), "linux", "Vagrant 2.4.9 cannot drive VirtualBox 7.3.0: Vagrant up to 2.4.9 knows "
                                    "VirtualBox up to 7.2"),
    ((7, 0, 2), (2, 3, 2), "darwin", "Vagrant 2.3.2 cannot make the lab's host-only networks with VirtualBox "
                                     "7.0.2 on macOS"),
])
def test_vagrant_that_cannot_drive_this_virtualbox_is_one_line(vbox, vagrant, platform, message):
    with pytest.raises(LabError) as err:
        check_vagrant_drives(vbox, vagrant, platform)
    assert "\n" not in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize("vbox, vagrant, platform", [
    ((6, 1, 40), (2, 2, 19), "linux"),
    ((7, 0, 10), (2, 3, 2), "linux"),
    ((7, 1, 4), (2, 4, 2), "win32"),
    ((7, 0, 2), (2, 3, 3), "darwin"),
    ((7, 3, 0), (2, 5, 0), "linux"),
])
def test_pairs_vagrant_supports_pass(vbox, vagrant, platform):
    check_vagrant_drives(vbox, vagrant, platform)


def test_vagrant_versions_are_read_from_its_output():
    assert parse_vagrant_version("2.3.4") == (2, 3, 4)
    assert parse_vagrant_version("2.4.2.dev") == (2, 4, 2)
    with pytest.raises(LabError):
        parse_vagrant_version("Vagrant")


class HostVBoxManage:
    """VBoxManage of a host whose VirtualBox has (or, on macOS 7, lacks) host-only interfaces."""

    def __init__(self, version: str, platform: str):
        self.version, self.platform = version, platform
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv == ["--version"]:
            return self.version + "\n"
        if argv == ["list", "hostonlyifs"]:
            return ""
        if argv == ["hostonlyif", "create"]:
            if self.platform == "darwin" and int(self.version[0]) >= 7:
                raise VBoxManageError(NO_VBOXNETCTL)
            return f"Interface 'vboxnet{len(self.calls)}' was successfully created\n"
        if argv[0] == "createmedium":
            Path(argv[3]).touch()
        return ""


class VersionedVagrant:
    def __init__(self, version: str):
        self._version = version
        self.upped = False

    def box_list(self):
        from vagrant import Box

        return [Box("freebsd/FreeBSD-10.3-RELEASE", "virtualbox", "2016.03.31")]

    def version(self) -> str:
        return self._version

    def up(self, vm_name=None, provider=None):
        self.upped = True


def provider_for(tmp_path: Path, vbox: HostVBoxManage, vagrant: VersionedVagrant, platform: str):
    return VirtualBoxProvider(PAPER, tmp_path / "lab", vboxmanage=vbox, vagrant_factory=lambda root, env: vagrant,
                              vbox_api_loader=lambda: None, networks_conf=tmp_path / "absent.conf",
                              host_platform=platform)


def test_macos_with_virtualbox_7_leaves_host_only_networks_to_vagrant(tmp_path: Path):
    vbox = HostVBoxManage("7.0.10r158379", "darwin")
    provider_for(tmp_path, vbox, VersionedVagrant("2.3.4"), "darwin").prepare((2, 3, 4))
    assert not any(argv[0] == "hostonlyif" for argv in vbox.calls)
    assert len([argv for argv in vbox.calls if argv[0] == "createmedium"]) == len(PAPER.disks)


def test_linux_gets_host_only_interfaces(tmp_path: Path):
    vbox = HostVBoxManage("7.0.10_Debianr158379", "linux")
    provider = provider_for(tmp_path, vbox, VersionedVagrant("2.3.4"), "linux")
    (tmp_path / "absent.conf").write_text("* 192.168.55.0/24 192.168.56.0/24\n")
    assert set(provider.prepare((2, 3, 4))) == {"private", "public"}
    assert ["hostonlyif", "create"] in vbox.calls


def test_up_refuses_a_vagrant_too_old_for_this_virtualbox_before_booting(tmp_path: Path):
    vagrant = VersionedVagrant("2.3.4")
    vbox = HostVBoxManage("7.1.4r165100", "linux")
    provider = provider_for(tmp_path, vbox, vagrant, "linux")
    with pytest.raises(LabError) as err:
        provider.up()
    assert "VirtualBox 7.1 needs Vagrant 2.4.2 or later" in str(err.value)
    assert not vagrant.upped and vbox.calls == [["--version"]]


def test_the_vagrantfile_trigger_checks_vagrant_against_virtualbox(tmp_path: Path, monkeypatch, capsys):
    from lab.providers.virtualbox import __main__ as cli

    fake = Path(__file__).parent / "fixtures" / "virtualbox" / "fakevbox.py"
    program = tmp_path / "bin" / "VBoxManage"
    program.parent.mkdir()
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    program.chmod(0o755)
    state = tmp_path / "fakevbox.json"
    state.write_text(json.dumps({"version": "7.1.4r165100", "vms": {}}))
    monkeypatch.setenv("FAKEVBOX_STATE", str(state))
    monkeypatch.setenv("PATH", f"{program.parent}:{os.environ['PATH']}")
    assert cli.main(["--lab-dir", str(tmp_path / "lab"), "prepare", "--vagrant-version", "2.3.4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VirtualBox 7.1 needs Vagrant 2.4.2 or later" in err
    assert json.loads(state.read_text())["calls"] == [["--version"]]
