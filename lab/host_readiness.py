"""What decides whether the lab will work on this host and how long it will take, for `bst doctor`.

Beside the host tools: root or not (apt and the guest image build need it once), the accelerator (the KVM
probe's cached verdict and its reason: an open /dev/kvm proves nothing), free disk and memory against what
the paper's lab needs, whether the guest image is cached, and the times measured under TCG. Nothing here
boots a VM or runs the probe: ``host_facts`` only reads, and ``readiness`` is a pure function of the facts.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.runfolder_io import loads, read_bytes

GIB = 1024**3
DISK_NEEDED_GIB = 10.0
"""The guest image cache (2.5 GiB measured), a running lab's overlays and shared disks (1.6 GiB) and the two
2.3 GiB snapshots `nox -s tests` saves, rounded up."""
IMAGE_CACHE_GIB = 2.5
MEMORY_NEEDED_GIB = 6.0
"""The paper's VMs ask for 4.5 GiB (2 + 2 + 0.5); each qemu process adds about half a GiB under TCG."""
TCG_TIMES = ("lab-up about 9 min on a fresh machine (about 2 min with the guest image cached); "
             "a drill 6-12 min")
"""Measured under TCG on 2 cores (README's requirements; docs/results.md)."""
KVM_TIMES = "faster than TCG; not timed yet (no KVM run has been measured)"


@dataclass(frozen=True)
class KvmVerdict:
    ok: bool
    reason: str
    this_boot: bool
    """The probe ran since this host last booted (choose_accel reuses only such a verdict)."""


@dataclass(frozen=True)
class HostFacts:
    root: bool
    kvm_device: bool
    forced_accel: str | None
    """BEAST_LAB_ACCEL when set: it decides instead of the probe."""
    kvm: KvmVerdict | None
    """The cached probe's verdict; None when no probe ran yet."""
    disk_free_gib: float
    """Free space where the lab and the image cache live (the smaller of the two)."""
    memory_available_gib: float | None
    image_cached: bool
    cache_dir: Path


@dataclass(frozen=True)
class Finding:
    check: str
    here: str
    meaning: str
    ok: bool = True


def read_kvm_verdict(cache_dir: Path, boot_id: str) -> KvmVerdict | None:
    """The verdict choose_accel cached in ``cache_dir`` (None when absent or not of its shape)."""
    from lab.qemu_leaf.accel import PROBE_CACHE

    try:
        data, _ = read_bytes(cache_dir, cache_dir / PROBE_CACHE)
        cached = loads(data.decode("utf-8"))
    except (OSError, ValueError, LabError):
        return None
    if not (isinstance(cached, dict) and isinstance(cached.get("ok"), bool) and isinstance(cached.get("reason"), str)):
        return None
    key = cached.get("key") if isinstance(cached.get("key"), dict) else {}
    return KvmVerdict(cached["ok"], cached["reason"], bool(boot_id) and key.get("boot_id") == boot_id)


def memory_available_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    return None


def _debian_image_cached(cache_dir: Path) -> bool:
    from lab.images.debian.cache import cached_image, image_dir_for
    from lab.images.debian.recipe import debian_recipe_hash

    recipe_hash = debian_recipe_hash()
    return cached_image(image_dir_for(cache_dir, recipe_hash), recipe_hash) is not None


def _free_gib(path: Path) -> float:
    existing = next(p for p in (path, *path.parents) if p.exists())
    return shutil.disk_usage(existing).free / GIB


def host_facts(lab_root: Path, cache_dir: Path | None = None) -> HostFacts:
    """This host's facts, read without running anything."""
    from lab.environment import env_choice
    from lab.images import default_cache_dir
    from lab.qemu_leaf.accel import ACCEL_ENV, ACCELERATORS, _boot_id

    cache_dir = cache_dir or default_cache_dir()
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        meminfo = ""
    return HostFacts(
        root=os.geteuid() == 0, kvm_device=Path("/dev/kvm").exists(),
        forced_accel=env_choice(ACCEL_ENV, ACCELERATORS), kvm=read_kvm_verdict(cache_dir, _boot_id()),
        disk_free_gib=min(_free_gib(lab_root), _free_gib(cache_dir)),
        memory_available_gib=memory_available_gib(meminfo), image_cached=_debian_image_cached(cache_dir),
        cache_dir=cache_dir)


def _accelerator(facts: HostFacts) -> tuple[Finding, str]:
    if facts.forced_accel:
        accel, here = facts.forced_accel, f"{facts.forced_accel} (BEAST_LAB_ACCEL is set)"
        meaning = "the variable decides; KVM is then used untested" if accel == "kvm" else "the variable decides"
    elif not facts.kvm_device:
        accel, here, meaning = "tcg", "TCG: no /dev/kvm", "QEMU emulates the CPU; it works, slowly"
    elif facts.kvm is None:
        accel, here = "tcg?", "not probed yet"
        meaning = ("bst up probes KVM by booting a Linux kernel under it for up to 12 s and uses TCG if that "
                   "fails; an open /dev/kvm proves nothing")
    else:
        accel = "kvm" if facts.kvm.ok else "tcg"
        when = "this boot" if facts.kvm.this_boot else "an earlier boot: bst up probes again"
        here = f"{'KVM' if facts.kvm.ok else 'TCG'} (probe of {when})"
        meaning = facts.kvm.reason
    return Finding("accelerator", here, meaning), accel


def readiness(facts: HostFacts) -> list[Finding]:
    """Each check with what was found and what it means for the lab; ``ok`` False where it will not work."""
    if facts.root:
        root = "apt and the guest image build can run"
    elif facts.image_cached:
        root = "enough now the guest image is cached (installing a missing host tool with apt needs root)"
    else:
        root = "run nox -s lab-up as root once: apt and the guest image build need it"
    findings = [Finding("root", "yes" if facts.root else "no", root)]
    accelerator, accel = _accelerator(facts)
    findings.append(accelerator)
    needed = DISK_NEEDED_GIB - (IMAGE_CACHE_GIB if facts.image_cached else 0)
    findings.append(Finding(
        "disk", f"{facts.disk_free_gib:.1f} GiB free", f"the lab needs about {needed:.0f} GiB (image cache, lab, "
        "two snapshots)" + ("" if facts.disk_free_gib >= needed else "; free some space first"),
        facts.disk_free_gib >= needed))
    if facts.memory_available_gib is None:
        findings.append(Finding("memory", "unknown (no /proc/meminfo)", f"the lab needs about "
                                f"{MEMORY_NEEDED_GIB:.0f} GiB available"))
    else:
        enough = facts.memory_available_gib >= MEMORY_NEEDED_GIB
        findings.append(Finding(
            "memory", f"{facts.memory_available_gib:.1f} GiB available",
            f"the three VMs need about {MEMORY_NEEDED_GIB:.0f} GiB" + ("" if enough else "; stop other VMs first"),
            enough))
    findings.append(Finding(
        "guest image", f"cached in {facts.cache_dir}" if facts.image_cached else "not cached",
        "bst up boots from it" if facts.image_cached else
        "the first bst up builds it (about 6 min, as root)"))
    findings.append(Finding("expected times", "KVM" if accel == "kvm" else "TCG",
                            KVM_TIMES if accel == "kvm" else TCG_TIMES))
    return findings
