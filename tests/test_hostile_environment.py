"""Hostile input, round two: environment variables and options are checked as the topology is. A value that
means nothing (an accelerator in capitals, a cache path with a line break, an empty --provider) is one line
naming the variable or option and the way out, never ignored and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.environment import env_text
from lab.errors import LabError
from lab.images import default_cache_dir
from lab.providers import select_provider
from lab.providers.virtualbox import __main__ as vagrant_entry
from lab.providers.virtualbox.layout import DEFAULT_BOX, box_name
from lab.qemu_leaf.accel import choose_accel
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[1]
CONTROL_CHARACTERS = ["\n", "\r", "\t", "\x1b[2J", "\x07", "\u2028"]


def bst(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120,
                          env=environment)


@pytest.mark.parametrize("value", ["TCG", "Kvm", "kvmm", "hvf", "tcg,kvm"])
def test_an_accelerator_not_spelt_as_qemu_does_is_refused(monkeypatch, value):
    """As --provider QEMU and --stack Linux are: names are lowercase, and a typo is not silently a probe."""
    monkeypatch.setenv("BEAST_LAB_ACCEL", value)
    with pytest.raises(LabError) as err:
        choose_accel(None, None)
    assert str(err.value) == (f"environment variable BEAST_LAB_ACCEL={value!r} is not one of kvm, tcg (lowercase); "
                              "set it to one of them, or unset it")


@pytest.mark.parametrize(("value", "name"), [("tcg", "tcg"), (" kvm ", "kvm")])
def test_a_forced_accelerator_is_used(monkeypatch, value, name):
    monkeypatch.setenv("BEAST_LAB_ACCEL", value)
    assert choose_accel(None, None).name == name


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_accelerator_is_unset(monkeypatch, value):
    monkeypatch.setenv("BEAST_LAB_ACCEL", value)
    assert "no Linux kernel is at hand" in choose_accel(None, None).reason


@pytest.mark.parametrize("bad", CONTROL_CHARACTERS)
def test_a_cache_path_with_a_control_character_is_refused(monkeypatch, tmp_path, bad):
    monkeypatch.setenv("BEAST_LAB_CACHE", f"{tmp_path}/cache{bad}x")
    with pytest.raises(LabError, match=r"^environment variable BEAST_LAB_CACHE holds the control character .*; "
                                       r"set it to one line of printable text, or unset it$"):
        default_cache_dir()


def test_a_relative_cache_path_is_refused_and_a_relative_xdg_one_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("BEAST_LAB_CACHE", "cache")
    with pytest.raises(LabError, match="BEAST_LAB_CACHE='cache' is not an absolute path; set it to one, or unset it"):
        default_cache_dir()
    monkeypatch.delenv("BEAST_LAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert default_cache_dir() == Path.home() / ".cache" / "beast-lab"
    monkeypatch.setenv("XDG_CACHE_HOME", f"{tmp_path}\nx")
    with pytest.raises(LabError, match="XDG_CACHE_HOME holds the control character '\\\\n'"):
        default_cache_dir()


def test_a_cache_path_under_home_is_expanded(monkeypatch):
    monkeypatch.setenv("BEAST_LAB_CACHE", "~/beast-cache")
    assert default_cache_dir() == Path.home() / "beast-cache"


@pytest.mark.parametrize("value", ["local/box\n", "a box", "../x", "-box", "box;rm"])
def test_a_box_name_that_is_not_one_is_refused(monkeypatch, value):
    monkeypatch.setenv("BEAST_BOX", value)
    with pytest.raises(LabError, match="BEAST_BOX"):
        box_name()


def test_box_names_vagrant_uses_are_accepted(monkeypatch):
    monkeypatch.setenv("BEAST_BOX", "local/freebsd-10.3")
    assert box_name() == "local/freebsd-10.3"
    monkeypatch.setenv("BEAST_BOX", "")
    assert box_name() == DEFAULT_BOX


def test_a_root_password_with_a_line_break_is_refused(monkeypatch):
    """Its newline would answer su's prompt early and type the rest as a command."""
    monkeypatch.setenv("BEAST_ROOT_PASSWORD", "vagrant\nreboot")
    with pytest.raises(LabError, match="BEAST_ROOT_PASSWORD holds the control character"):
        env_text("BEAST_ROOT_PASSWORD")


@pytest.mark.parametrize("variable", ["BEAST_TOPOLOGY", "BEAST_LAB_DIR"])
def test_the_vagrantfiles_entry_point_refuses_a_path_with_a_line_break(monkeypatch, capsys, variable):
    monkeypatch.setenv(variable, "/tmp/x\nrm -rf /")
    assert vagrant_entry.main(["export-json"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"environment variable {variable} holds the control character" in lines[0]


def test_an_empty_provider_option_is_an_unknown_provider_not_the_default():
    with pytest.raises(LabError, match="unknown provider ''; choose one of: auto, qemu, virtualbox"):
        select_provider(load_topology(), "")


@pytest.mark.parametrize(("args", "env", "message"), [
    (["status", "--provider", ""], {}, "unknown provider ''; choose one of: auto, qemu, virtualbox"),
    (["image", "freebsd", "--download", "--dry-run"], {"BEAST_LAB_CACHE": "/tmp/a\nb"},
     "environment variable BEAST_LAB_CACHE holds the control character '\\n'"),
])
def test_bst_says_a_bad_option_or_variable_in_one_line_and_exit_2(args, env, message):
    result = bst(*args, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
