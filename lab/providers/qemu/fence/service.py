"""Starting and stopping a qemu lab's fence listener, as the provider does its vde switches: by pid file,
checked by command line (lab.labdir), never by process name.

The listener runs ``python -m lab.providers.qemu.fence --lab-dir DIR -pidfile PIDFILE`` in its own session and writes
its pid file once every socket is bound, so VMs launched after ``ensure_listener`` find it at once. It
starts hosts again through a QemuProvider of its own, built from what ``launch.json`` records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import lab
from lab.errors import LabError
from lab.labdir import owned_pid, remove_inside, stop_owned_process

if TYPE_CHECKING:
    from lab.providers.qemu import QemuProvider

READY_TIMEOUT_SECONDS = 10.0


def listener_files(provider: QemuProvider) -> dict[str, Path]:
    d = provider.path("fence")
    return {
        "launch": d / "launch.json",
        "topology": d / "topology.toml",
        "text_log": d / "fence.log",
        "output": d / "listener.out",
    }


def ensure_listener(provider: QemuProvider) -> int:
    """The running listener's pid, starting it (after removing stale sockets and pid file) if its pid file
    does not name a live listener of this lab."""
    pidfile = provider.fence_pidfile
    pid = owned_pid(pidfile)
    if pid is not None:
        return pid
    files = listener_files(provider)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    _record_launch(provider, files)
    for stale in [pidfile, *(provider.fence_socket(h) for h in provider.topology.hosts)]:
        remove_inside(provider.lab_dir, stale)
    environment = dict(os.environ)
    package_root = str(Path(lab.__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, environment.get("PYTHONPATH")) if p)
    with open(files["output"], "ab") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "lab.providers.qemu.fence", "--lab-dir", str(provider.lab_dir),
             "-pidfile", str(pidfile)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            cwd=provider.lab_dir,
            env=environment,
        )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while (pid := owned_pid(pidfile)) is None:
        if child.poll() is not None or time.monotonic() > deadline:
            if child.poll() is None:
                stop_owned_process(child.pid, pidfile)
            lines = files["output"].read_text(errors="replace").strip().splitlines() or ["no output"]
            raise LabError(f"the fence listener did not start: {lines[-1]} (see {files['output']})")
        time.sleep(0.05)
    return pid


def stop_listener(provider: QemuProvider) -> None:
    pidfile = provider.fence_pidfile
    pid = owned_pid(pidfile)
    if pid is not None:
        stop_owned_process(pid, pidfile)


def _record_launch(provider: QemuProvider, files: dict[str, Path]) -> None:
    """What the listener's own provider needs beyond state.json: the topology, qemu and the hardware."""
    source = Path(provider.topology.source)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:
        raise LabError(f"the fence listener needs the topology as a file, and {provider.topology.source!r} "
                       "is not one; load the topology from a .toml file") from None
    files["topology"].write_text(text, encoding="utf-8")
    launch = {"qemu": provider.qemu, "hardware": asdict(provider.guest_hardware()), "topology": files["topology"].name}
    files["launch"].write_text(json.dumps(launch, indent=2, sort_keys=True) + "\n")
