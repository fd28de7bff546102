"""Which accelerator a lab's VMs run under: KVM when a Linux kernel really boots under it here, else TCG.

Knows qemu's accelerator options and how to probe /dev/kvm; knows nothing of labs, hosts or guests.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.environment import env_choice
from lab.errors import LabError
from lab.runfolder_io import loads, read_bytes, replace_file

QEMU = "qemu-system-x86_64"
KVM_PROBE_SECONDS = 12.0
ACCEL_ENV = "BEAST_LAB_ACCEL"
ACCELERATORS = ("kvm", "tcg")
PROBE_CACHE = "kvm-probe.json"
NO_PROBE_KERNEL = (
    "TCG because no Linux kernel is at hand to prove KVM runs a guest's kernel here (none cached, and this "
    "host's own /boot/vmlinuz-<release> is absent or unreadable; a FreeBSD image boots its own; an open "
    "/dev/kvm proves nothing, as some hosts' KVM runs firmware but not kernels); build the Debian image once, "
    f"run as root, or set {ACCEL_ENV}=kvm to use KVM untested"
)


@dataclass(frozen=True)
class Accel:
    name: str
    """``kvm`` or ``tcg``."""
    reason: str

    @property
    def qemu_args(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi"]


def probe_kvm(kernel: Path, qemu: str = QEMU, timeout: float = KVM_PROBE_SECONDS) -> tuple[bool, str]:
    """Whether a Linux kernel really runs under KVM here: boot it without a root disk until it panics.

    Some hosts have a /dev/kvm on which firmware runs but ordinary kernels hang or die with "KVM
    internal error ... emulation failure", so opening /dev/kvm proves nothing.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    with tempfile.TemporaryDirectory(prefix="beast-kvm-probe-") as tmp:
        console = Path(tmp) / "console.log"
        argv = [
            qemu,
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-machine",
            "pc",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            str(kernel),
            "-append",
            "console=ttyS0 panic=-1 loglevel=4",
            "-serial",
            f"file:{console}",
        ]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"a Linux kernel did not get to its first panic within {timeout:.0f} s under KVM"
        text = console.read_text(errors="replace") if console.exists() else ""
        errors = done.stderr.decode(errors="replace")
        if "KVM internal error" in errors or "emulation failure" in errors:
            return False, "KVM reports an internal error (emulation failure) running a Linux kernel"
        if done.returncode == 0 and "Kernel panic" in text:
            return True, "a Linux kernel boots under KVM"
        last = (errors.strip().splitlines() or ["no output"])[-1]
        return False, f"qemu -accel kvm failed: {last}"


def probe_kernel(cache_dir: Path, boot_dir: Path = Path("/boot")) -> Path | None:
    """A Linux kernel to probe KVM with when the guest brings none (FreeBSD boots its own loader): a Debian
    kernel an earlier build left in the cache (any recipe), else this host's own running kernel when it is
    readable (Ubuntu keeps it root-only). Either only proves that KVM runs a kernel here."""
    kernels = [k for k in (cache_dir / "images").glob("debian-*/vmlinuz") if k.is_file() and k.stat().st_size]
    if kernels:
        return max(kernels, key=lambda k: k.stat().st_mtime)
    host_kernel = boot_dir / f"vmlinuz-{os.uname().release}"
    return host_kernel if host_kernel.is_file() and os.access(host_kernel, os.R_OK) else None


def choose_accel(kernel: Path | None, cache_dir: Path | None, qemu: str = QEMU) -> Accel:
    """KVM when it really runs a kernel here, else TCG; the probe result is cached per host boot.

    ``kernel``: a Linux kernel to probe with (for a FreeBSD guest, a cached Debian kernel); None: no probe
    that means anything can run, so TCG, and the reason says how to get KVM."""
    forced = env_choice(ACCEL_ENV, ACCELERATORS)
    if forced:
        return Accel(forced, f"{ACCEL_ENV}={forced} is set")
    if kernel is None:
        return Accel("tcg", NO_PROBE_KERNEL)
    key = {"boot_id": _boot_id(), "qemu": _qemu_version(qemu), "kernel": str(kernel)}
    cached = _cached_probe(cache_dir, key) if cache_dir else None
    if cached is not None:
        return _accel_from_probe(cached[0], cached[1] + " (probed earlier this boot)")
    ok, reason = probe_kvm(kernel, qemu)
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            replace_file(cache_dir, PROBE_CACHE, json.dumps({"key": key, "ok": ok, "reason": reason}).encode())
        except (OSError, LabError):
            pass
    return _accel_from_probe(ok, reason)


def _cached_probe(cache_dir: Path, key: dict[str, str]) -> tuple[bool, str] | None:
    """(ok, reason) of a probe this boot; None when there is none, or the file is not what choose_accel
    wrote (a link, a FIFO, JSON of another shape): then the probe runs again."""
    try:
        data, _ = read_bytes(cache_dir, cache_dir / PROBE_CACHE)
        cached = loads(data.decode("utf-8"))
    except (OSError, ValueError, LabError):
        return None
    if (isinstance(cached, dict) and cached.get("key") == key and isinstance(cached.get("ok"), bool)
            and isinstance(cached.get("reason"), str)):
        return cached["ok"], cached["reason"]
    return None


def _accel_from_probe(ok: bool, reason: str) -> Accel:
    return Accel("kvm", reason) if ok else Accel("tcg", f"TCG because {reason}")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _qemu_version(qemu: str) -> str:
    try:
        return subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10).stdout.split(
            "\n"
        )[0]
    except (OSError, subprocess.TimeoutExpired):
        return ""

