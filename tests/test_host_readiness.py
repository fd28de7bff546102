"""`bst doctor` says what decides whether the lab will work here and how long it takes: root, the KVM probe's
cached verdict (read, never run), free disk and memory against the lab's needs, the image cache, the expected
times. All from fake facts: nothing here boots a VM or probes KVM."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab import cli, host_readiness
from lab.host_readiness import HostFacts, KvmVerdict, memory_available_gib, read_kvm_verdict, readiness

READY = HostFacts(root=True, kvm_device=True, forced_accel=None, kvm=KvmVerdict(True, "a Linux kernel booted", True),
                  disk_free_gib=50.0, memory_available_gib=16.0, image_cached=True, cache_dir=Path("/c"))


def found(facts: HostFacts) -> dict[str, host_readiness.Finding]:
    return {f.check: f for f in readiness(facts)}


def test_a_ready_kvm_host_passes_every_check_and_expects_kvm_times():
    checks = found(READY)
    assert all(f.ok for f in checks.values())
    assert checks["accelerator"].here == "KVM (probe of this boot)"
    assert checks["accelerator"].meaning == "a Linux kernel booted"
    assert checks["expected times"].meaning == host_readiness.KVM_TIMES


def test_a_failed_probe_means_tcg_with_its_reason_and_tcg_times():
    checks = found(dataclasses.replace(READY, kvm=KvmVerdict(False, "no first panic within 12 s", False)))
    assert checks["accelerator"].here == "TCG (probe of an earlier boot: bst up probes again)"
    assert checks["accelerator"].meaning == "no first panic within 12 s"
    assert "lab-up about 9 min" in checks["expected times"].meaning and "6-12 min" in checks["expected times"].meaning


@pytest.mark.parametrize(("facts", "here"), [
    (dataclasses.replace(READY, kvm_device=False, kvm=None), "TCG: no /dev/kvm"),
    (dataclasses.replace(READY, kvm=None), "not probed yet"),
    (dataclasses.replace(READY, forced_accel="tcg"), "tcg (BEAST_LAB_ACCEL is set)"),
])
def test_the_accelerator_without_a_verdict(facts, here):
    assert found(facts)["accelerator"].here == here


def test_not_root_without_a_cached_image_says_to_run_lab_up_as_root_once():
    checks = found(dataclasses.replace(READY, root=False, image_cached=False))
    assert checks["root"].meaning == "run nox -s lab-up as root once: apt and the guest image build need it"
    assert checks["guest image"].here == "not cached"
    assert "builds it" in checks["guest image"].meaning


def test_not_root_with_a_cached_image_is_enough():
    assert found(dataclasses.replace(READY, root=False))["root"].meaning.startswith("enough now the guest image")


def test_too_little_disk_or_memory_fails_and_says_so():
    checks = found(dataclasses.replace(READY, disk_free_gib=3.0, memory_available_gib=2.0, image_cached=False))
    assert not checks["disk"].ok and "needs about 10 GiB" in checks["disk"].meaning
    assert "free some space first" in checks["disk"].meaning
    assert not checks["memory"].ok and "stop other VMs first" in checks["memory"].meaning


def test_the_image_cache_lowers_what_the_disk_must_hold():
    assert found(dataclasses.replace(READY, disk_free_gib=8.0))["disk"].ok
    assert not found(dataclasses.replace(READY, disk_free_gib=8.0, image_cached=False))["disk"].ok


def write_probe(cache_dir: Path, content) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "kvm-probe.json").write_text(content if isinstance(content, str) else json.dumps(content))


def test_the_probe_verdict_is_read_from_the_cache_and_dated_by_boot(tmp_path):
    write_probe(tmp_path, {"key": {"boot_id": "b1", "qemu": "q", "kernel": "k"}, "ok": False, "reason": "r"})
    assert read_kvm_verdict(tmp_path, "b1") == KvmVerdict(False, "r", True)
    assert read_kvm_verdict(tmp_path, "b2") == KvmVerdict(False, "r", False)


@pytest.mark.parametrize("content", ["not json", {"ok": "yes", "reason": "r"}, [1, 2]])
def test_a_probe_cache_of_another_shape_is_no_verdict(tmp_path, content):
    write_probe(tmp_path, content)
    assert read_kvm_verdict(tmp_path, "b1") is None


def test_no_probe_cache_is_no_verdict(tmp_path):
    assert read_kvm_verdict(tmp_path, "b1") is None


def test_memory_available_from_meminfo():
    assert memory_available_gib("MemTotal: 100 kB\nMemAvailable:   2097152 kB\n") == 2.0
    assert memory_available_gib("") is None


def test_host_facts_only_reads(tmp_path, monkeypatch):
    """On the real host with an empty cache: no image, no verdict, nothing run (a probe would write a cache)."""
    monkeypatch.delenv("BEAST_LAB_ACCEL", raising=False)
    facts = host_readiness.host_facts(tmp_path / ".lab", tmp_path / "cache")
    assert facts.kvm is None and not facts.image_cached and facts.disk_free_gib > 0
    assert not (tmp_path / "cache").exists()


def doctor(monkeypatch, facts: HostFacts):
    monkeypatch.setattr("shutil.which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(host_readiness, "host_facts", lambda lab_root: facts)
    return CliRunner().invoke(cli.app, ["doctor", "--provider", "qemu"], env={"COLUMNS": "200"})


def test_bst_doctor_shows_each_check_and_exits_0_when_ready(monkeypatch):
    result = doctor(monkeypatch, READY)
    assert result.exit_code == 0, result.output
    for words in ("root", "accelerator", "KVM (probe of this boot)", "50.0 GiB free", "16.0 GiB available",
                  "guest image", "expected times"):
        assert words in result.output


def test_bst_doctor_exits_1_when_the_disk_is_too_small(monkeypatch):
    result = doctor(monkeypatch, dataclasses.replace(READY, disk_free_gib=1.0))
    assert result.exit_code == 1 and "free some space first" in result.output
