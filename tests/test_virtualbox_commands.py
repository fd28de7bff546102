"""The VirtualBox provider offline, before anything boots: exact VBoxManage and Vagrantfile command lines,
host-only networks, and the preflight checks' one-line errors.

VBoxManage is replaced by a recorder (tests/virtualbox_support.py); nothing here needs VirtualBox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vagrant import Box
from virtualbox_support import (
    BOX,
    HOSTONLYIFS,
    NETWORKS_CONF_LINE,
    PAPER,
    FakeVagrant,
    FakeVBoxManage,
    make_provider,
    one_line,
)

from lab.errors import LabError, MissingToolError
from lab.providers.virtualbox import __main__ as cli
from lab.providers.virtualbox import layout
from lab.providers.virtualbox.vboxmanage import (
    VBoxManage,
    VBoxManageError,
    check_host_only_ranges,
    ensure_host_only_networks,
    parse_host_only_interfaces,
    parse_version,
)

# --- command lines ---------------------------------------------------------------------------------


def test_media_are_fixed_size_then_shareable(tmp_path: Path):
    d00, f00 = PAPER.disks["d00"], PAPER.disks["f00"]
    assert layout.create_medium_commands(d00, tmp_path / "d00.vdi") == [
        ["createmedium", "disk", "--filename", f"{tmp_path}/d00.vdi", "--size", "256", "--variant", "Fixed"],
        ["modifymedium", "disk", f"{tmp_path}/d00.vdi", "--type", "shareable"],
    ]
    assert layout.create_medium_commands(f00, tmp_path / "f00.vdi")[0][5] == "128"


def test_controller_storage_gives_paper_device_names(tmp_path: Path):
    lab = tmp_path / "lab"
    hdd = ["--device", "0", "--type", "hdd"]

    def attach(controller: str, port: int, disk: str, *flags: str) -> list[str]:
        return ["storageattach", "beast-ctrl-a", "--storagectl", controller, "--port", str(port), *hdd,
                "--medium", f"{lab}/disks/{disk}.vdi", "--mtype", "shareable", *flags]

    assert layout.storage_commands(PAPER, PAPER.hosts["ctrl-a"], lab, "beast-ctrl-a") == [
        ["storagectl", "beast-ctrl-a", "--name", "SATA Controller", "--add", "sata", "--controller", "IntelAhci",
         "--portcount", "4", "--bootable", "off"],
        ["storagectl", "beast-ctrl-a", "--name", "SAS Controller", "--add", "sas", "--controller", "LsiLogicSas",
         "--portcount", "4", "--bootable", "off"],
        attach("SATA Controller", 0, "d00"),
        attach("SATA Controller", 1, "d01"),
        attach("SATA Controller", 2, "d10"),
        attach("SATA Controller", 3, "d11"),
        attach("SAS Controller", 0, "f00", "--nonrotational", "on"),
        attach("SAS Controller", 1, "f01", "--nonrotational", "on"),
        attach("SAS Controller", 2, "f10", "--nonrotational", "on"),
        attach("SAS Controller", 3, "f11", "--nonrotational", "on"),
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port0/SerialNumber", "beast-d00"],
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port1/SerialNumber", "beast-d01"],
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port2/SerialNumber", "beast-d10"],
        ["setextradata", "beast-ctrl-a", "VBoxInternal/Devices/ahci/0/Config/Port3/SerialNumber", "beast-d11"],
    ]


def test_both_controllers_get_the_same_disks_and_the_client_none(tmp_path: Path):
    a = layout.storage_commands(PAPER, PAPER.hosts["ctrl-a"], tmp_path)
    b = layout.storage_commands(PAPER, PAPER.hosts["ctrl-b"], tmp_path)
    assert a == b and a[0][1] == layout.VM_PLACEHOLDER
    assert layout.storage_commands(PAPER, PAPER.hosts["clnt-1"], tmp_path) == []


def test_detach_empties_every_shared_port():
    assert layout.detach_commands(PAPER, PAPER.hosts["ctrl-b"], "beast-ctrl-b")[4] == [
        "storageattach", "beast-ctrl-b", "--storagectl", "SAS Controller", "--port", "0", "--device", "0",
        "--medium", "none",
    ]
    assert layout.detach_commands(PAPER, PAPER.hosts["clnt-1"], "beast-clnt-1") == []


def test_machine_settings_keep_paper_nic_names_and_log_the_serial_console(tmp_path: Path):
    assert layout.machine_commands(PAPER.hosts["ctrl-a"], tmp_path, "beast-ctrl-a") == [
        ["modifyvm", "beast-ctrl-a", "--nictype1", "virtio"],
        ["modifyvm", "beast-ctrl-a", "--nictype2", "82540EM"],
        ["modifyvm", "beast-ctrl-a", "--nictype3", "82540EM"],
        ["modifyvm", "beast-ctrl-a", "--uart1", "0x3F8", "4", "--uartmode1", "file", f"{tmp_path}/ctrl-a.console.log"],
    ]
    assert layout.guest_interfaces(PAPER.hosts["ctrl-b"]) == {"private": "em0", "public": "em1"}
    assert layout.guest_interfaces(PAPER.hosts["clnt-1"]) == {"public": "em0"}


def test_export_json_is_what_the_vagrantfile_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--lab-dir", str(tmp_path), "export-json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["box"] == BOX and exported["base_mac"] == "080027D14C66"
    assert [h["vm_name"] for h in exported["hosts"]] == ["beast-ctrl-a", "beast-ctrl-b", "beast-clnt-1"]
    ctrl_a = exported["hosts"][0]
    assert ctrl_a["networks"][1] == {"network": "public", "ip": "192.168.55.10", "netmask": "255.255.255.0",
                                     "nic_type": "82540EM", "guest_interface": "em1"}
    assert ctrl_a["first_boot_customize"] == layout.storage_commands(PAPER, PAPER.hosts["ctrl-a"], tmp_path)
    assert exported["hosts"][2]["first_boot_customize"] == []


def test_export_json_names_a_bad_topology_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--topology", str(tmp_path / "nope.toml"), "export-json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


# --- host-only networks ---------------------------------------------------------------------------


def test_versions_are_read_from_vboxmanage():
    assert parse_version("7.0.10_Debianr158379\n") == (7, 0, 10)
    assert parse_version("6.1.38r153438") == (6, 1, 38)


def test_networks_conf_missing_refuses_the_public_network_with_the_exact_line(tmp_path: Path):
    with pytest.raises(LabError) as err:
        check_host_only_ranges(PAPER, (7, 0, 10), None, tmp_path / "networks.conf")
    message = one_line(err)
    assert "public 192.168.55.0/24" in message and "private" not in message.split("allows only")[1]
    assert message.endswith(f"add this line to {tmp_path}/networks.conf (as root): {NETWORKS_CONF_LINE}")


def test_networks_conf_without_the_range_is_refused(tmp_path: Path):
    with pytest.raises(LabError) as err:
        check_host_only_ranges(PAPER, (6, 1, 28), "# lab\n* 10.0.0.0/8\n", tmp_path / "networks.conf")
    assert "does not allow private 192.168.56.0/24, public 192.168.55.0/24" in one_line(err)


@pytest.mark.parametrize("version, conf", [
    ((6, 1, 26), None),
    ((7, 0, 10), NETWORKS_CONF_LINE + "\n"),
    ((7, 0, 10), "* 0.0.0.0/0 ::/0\n"),
    ((7, 0, 10), "* 192.168.0.0/16\n"),
])
def test_allowed_host_only_ranges_pass(version, conf):
    check_host_only_ranges(PAPER, version, conf)


def test_host_only_interfaces_are_parsed_from_real_output():
    interfaces = parse_host_only_interfaces(HOSTONLYIFS)
    assert [(i.ip, i.netmask) for i in interfaces] == [("192.168.99.1", "255.255.255.0"),
                                                       ("192.168.56.1", "255.255.255.0")]


def test_missing_host_only_interface_is_created_and_addressed():
    vbox = FakeVBoxManage()
    chosen = ensure_host_only_networks(vbox, layout.host_only_networks(PAPER))
    assert vbox.calls == [
        ["list", "hostonlyifs"],
        ["hostonlyif", "create"],
        ["hostonlyif", "ipconfig", "vboxnet1", "--ip", "192.168.55.1", "--netmask", "255.255.255.0"],
    ]
    assert chosen == {"private": "VirtualBox NDIS 6.0 Miniport Driver", "public": "vboxnet1"}


# --- preflight errors ------------------------------------------------------------------------------


def test_vboxmanage_absent_is_a_missing_tool_with_the_install_hint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError) as err:
        VBoxManage()(["--version"])
    assert "apt-get install -y virtualbox" in one_line(err)


def test_vboxmanage_failure_reports_its_error_line(tmp_path: Path):
    fake = tmp_path / "VBoxManage"
    fake.write_text("#!/bin/sh\necho 'VBoxManage: error: Could not find a registered machine named x' >&2\n"
                    "echo 'VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(VBoxManageError) as err:
        VBoxManage(program=str(fake))(["showvminfo", "x"])
    assert one_line(err) == ("`VBoxManage showvminfo x` failed: "
                             "VBoxManage: error: Could not find a registered machine named x")


def test_missing_box_says_how_to_add_it(tmp_path: Path):
    provider = make_provider(tmp_path, fake_vagrant=FakeVagrant(boxes=[Box("generic/freebsd12", "virtualbox", "4")]))
    with pytest.raises(LabError) as err:
        provider.up()
    message = one_line(err)
    assert f"`vagrant box add {BOX} --provider virtualbox`" in message
    assert provider.fake_vagrant.calls == [("box_list",)]  # type: ignore[attr-defined]


def test_up_refuses_before_anything_when_networks_conf_lacks_the_range(tmp_path: Path):
    vbox = FakeVBoxManage()
    provider = make_provider(tmp_path, vbox, conf_text=None)
    with pytest.raises(LabError) as err:
        provider.up()
    assert one_line(err).endswith(NETWORKS_CONF_LINE)
    assert vbox.calls == [["--version"]]
    assert ("up", None, "virtualbox") not in provider.fake_vagrant.calls  # type: ignore[attr-defined]
