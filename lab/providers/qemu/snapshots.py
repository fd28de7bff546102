"""Whole-lab snapshots of a qemu lab: every VM paused together, its RAM and devices saved over QMP,
every disk copied; and restoring them.

The manifest, names and checks live in lab.providers.snapshot (shared by providers). Guests are not
touched: their clocks are behind after a save or a restore, and the caller sets them (lab.guests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import Progress

from lab.errors import LabError
from lab.labdir import inside, lab_lock, process_cmdline, remove_inside
from lab.providers import snapshot
from lab.providers.qemu.fence.service import ensure_listener
from lab.providers.qemu.processes import QemuProcesses
from lab.providers.snapshot import Manifest, SnapshotError, SnapshotUnusable
from lab.qemu_leaf.qmp import QmpClient, QmpError, qmp_command

SNAPSHOT_FD_NAME = "beast-snapshot"
MIGRATE_BANDWIDTH = 8 * 1024**3
"""Bytes/s for saving a paused VM's state: QEMU's default limit (32 MiB/s) would make it take minutes."""
SNAPSHOT_SAVE_TIMEOUT_SECONDS = 600.0
SNAPSHOT_LOAD_TIMEOUT_SECONDS = 600.0


class QemuSnapshots(QemuProcesses):
    """snapshot_save/restore/list/delete for QemuProvider; power_off and the SSH wait come from it."""

    name: str

    def snapshot_dir(self, name: str) -> Path:
        return self.path(snapshot.SNAPSHOTS_DIR, snapshot.check_name(name))

    def snapshots(self) -> list[Manifest]:
        """Complete, readable snapshots of this lab, by name."""
        root = self.lab_dir / snapshot.SNAPSHOTS_DIR
        found = []
        for name in snapshot.snapshot_names(root):
            try:
                found.append(snapshot.read_manifest(root / name))
            except SnapshotUnusable:
                continue
        return found

    def snapshot_delete(self, name: str) -> None:
        directory = self.snapshot_dir(name)
        if not directory.is_dir():
            raise LabError(f"no snapshot {name} in lab {self.topology.lab.name} ({directory.parent})")
        with lab_lock(self.lab_dir, f"snapshot delete {name}"):
            trash = directory.with_name(f".{name}.deleted-{os.getpid()}")
            directory.rename(trash)
            remove_inside(self.lab_dir, trash)

    def snapshot_save(self, name: str, progress: Progress | None = None, replace: bool = False) -> Manifest:
        """Pause every VM, save each one's devices and RAM (QMP ``migrate`` to a file descriptor), copy
        every overlay and shared disk, write the manifest, then continue every VM.

        The VMs are paused together (one QMP session each, opened first, then ``stop`` in a row), so
        the disks and the RAM states are one consistent moment of the whole lab. Any failure cancels
        the migrations, removes the partial snapshot and continues the VMs: the lab is never left
        paused. The state goes to a file descriptor we open and pass over QMP rather than to
        ``exec:cat > FILE``: when a migration ends QEMU closes the pipe and kills its helper within
        milliseconds, which may cut the last buffer of the file.
        """
        snapshot.check_name(name)
        started = time.monotonic()
        hosts = list(self.topology.hosts)
        if not self.state_path.exists():
            raise LabError(
                f"lab {self.topology.lab.name} is not up ({self.lab_dir} has no state); "
                "a snapshot saves a running, provisioned lab: bst up, provision, then save"
            )
        with lab_lock(self.lab_dir, f"snapshot save {name}"):
            state = self.load_state()
            down = [h for h in hosts if self.running_pid(h) is None]
            if not state or down:
                raise LabError(
                    f"lab {self.topology.lab.name} is not running ({', '.join(down) or 'no VMs'} down); "
                    "a snapshot saves a running, provisioned lab: bst up, provision, then save"
                )
            final = self.snapshot_dir(name)
            if final.exists() and not replace:
                raise LabError(
                    f"snapshot {name} already exists in {final.parent}; use another name, or replace it: "
                    f"bst snapshot save {name} --replace"
                )
            partial = final.with_name(f".{name}{snapshot.PARTIAL_MARK}{os.getpid()}")
            remove_inside(self.lab_dir, partial)
            (partial / "disks").mkdir(parents=True)
            (partial / "ssh").mkdir(mode=0o700)
            argv = {h: snapshot.normalise_argv(process_cmdline(self.running_pid(h)) or [], self.lab_dir) for h in hosts}
            timings: dict[str, float] = {}
            clients: dict[str, QmpClient] = {}
            stopped: list[str] = []
            was_running: dict[str, bool] = {}
            failed = True
            try:
                for host in hosts:
                    client = QmpClient(self.vm_paths(host).qmp, timeout=30)
                    client.connect()
                    clients[host] = client
                for host in hosts:
                    was_running[host] = bool(clients[host].execute("query-status").get("running"))
                stop_started = time.monotonic()
                for host in hosts:
                    clients[host].execute("stop")
                    stopped.append(host)
                timings["stop_spread_s"] = round(time.monotonic() - stop_started, 3)
                phase = time.monotonic()
                for host in hosts:
                    state_file = inside(self.lab_dir, partial / f"{host}.state")
                    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                    try:
                        clients[host].send_fd(SNAPSHOT_FD_NAME, fd)
                    finally:
                        os.close(fd)
                    clients[host].execute("migrate-set-parameters", {"max-bandwidth": MIGRATE_BANDWIDTH})
                    clients[host].execute("migrate", {"uri": f"fd:{SNAPSHOT_FD_NAME}"})
                self._wait_migrations(clients, progress)
                timings["state_s"] = round(time.monotonic() - phase, 2)
                phase = time.monotonic()
                copies = [(self.vm_paths(h).overlay, partial / f"{h}.qcow2", False) for h in hosts]
                copies += [(self.disk_path(d), partial / "disks" / f"{d}.raw", True) for d in self.topology.disks]
                keys = (self.key_path, self.key_path.with_suffix(".pub"))
                copies += [(key, partial / "ssh" / key.name, False) for key in keys]
                self._copy_files(copies, progress, f"snapshot {name}: copying disks")
                timings["copy_s"] = round(time.monotonic() - phase, 2)
                image = state.get("image", {})
                manifest = Manifest(
                    name=name,
                    created_utc=snapshot.utc_now(),
                    provider=self.name,
                    lab=self.topology.lab.name,
                    lab_dir=str(self.lab_dir),
                    topology_source=self.topology.source,
                    topology_hash=snapshot.topology_hash(self.topology),
                    image_name=str(image.get("name", "")),
                    image_hash=str(image.get("recipe_hash", "")),
                    accel=str(state.get("accel", "")),
                    disk_cache=str(state.get("disk_cache", "none")),
                    hosts=hosts,
                    files={
                        str(p.relative_to(partial)): p.stat().st_size
                        for p in sorted(partial.rglob("*"))
                        if p.is_file()
                    },
                    argv=argv,
                    timings=timings,
                )
                timings["paused_s"] = round(time.monotonic() - stop_started, 2)
                snapshot.write_manifest(partial, manifest)
                old = final.with_name(f".{name}.replaced-{os.getpid()}")
                if final.exists():
                    final.rename(old)
                partial.rename(final)
                remove_inside(self.lab_dir, old)
                failed = False
            finally:
                if failed:
                    for host in stopped:
                        try:
                            if clients[host].execute("query-migrate").get("status") in ("active", "setup"):
                                clients[host].execute("migrate_cancel")
                        except QmpError:
                            pass
                    remove_inside(self.lab_dir, partial)
                problems = []
                for host in stopped:
                    if was_running.get(host, True):
                        try:
                            clients[host].execute("cont")
                        except QmpError as err:
                            problems.append(f"{host}: {err}")
                for client in clients.values():
                    client.close()
                if problems and not failed:
                    raise SnapshotError(
                        f"snapshot {name} was saved but some VMs did not continue ({'; '.join(problems)}); "
                        "try bst resume HOST"
                    )
        timings["total_s"] = round(time.monotonic() - started, 2)
        return manifest

    def snapshot_restore(self, name: str, progress: Progress | None = None) -> dict[str, Any]:
        """Stop this lab's VMs (by pid), copy the snapshot's disks back, start each qemu with its usual
        command line plus ``-S -incoming "exec:cat STATE"``, continue all of them together once every
        state is loaded, and wait for SSH. Guest clocks are left behind by the snapshot's age: the caller
        sets them (lab.guests.sync_clocks), as after a save.

        The VDE switches stay up. Works on a lab that is down too (snapshots survive `bst down`)."""
        snapshot.check_name(name)
        started = time.monotonic()
        hosts = list(self.topology.hosts)
        directory = self.snapshot_dir(name)
        if not directory.is_dir():
            known = snapshot.snapshot_names(directory.parent)
            hint = f"snapshots here: {', '.join(known)}" if known else f"save one first: bst snapshot save {name}"
            raise SnapshotUnusable(f"no snapshot {name} in lab {self.topology.lab.name} ({directory.parent}); {hint}")
        manifest = snapshot.read_manifest(directory)
        image = self._image(progress)
        problem = snapshot.mismatch(manifest, self.topology, image.recipe_hash, self.name)
        if problem:
            raise SnapshotUnusable(problem)
        bad = snapshot.missing_files(directory, manifest)
        if bad:
            raise SnapshotUnusable(
                f"snapshot {name} is incomplete ({bad[0]} is missing or has another size); "
                f"delete it (bst snapshot delete {name}) and save it again"
            )
        pubkey = (directory / "ssh" / "id_ed25519.pub").read_text().strip()
        for host in hosts:
            now = snapshot.normalise_argv(
                self.qemu_command(host, image, 0, manifest.accel, pubkey, manifest.disk_cache), self.lab_dir
            )
            difference = snapshot.argv_difference(manifest.argv.get(host, []), now)
            if difference:
                raise SnapshotUnusable(
                    f"snapshot {name}: {host}'s qemu command line is not the one it was saved with "
                    f"({difference}); its state cannot be loaded: rebuild the lab and save it again"
                )
        timings: dict[str, Any] = {}
        with lab_lock(self.lab_dir, f"snapshot restore {name}"):
            try:
                phase = time.monotonic()
                for host in hosts:
                    self.power_off(host)
                timings["stop_s"] = round(time.monotonic() - phase, 2)
                phase = time.monotonic()
                self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                for key in (self.key_path, self.key_path.with_suffix(".pub")):
                    snapshot.copy_file(directory / "ssh" / key.name, key, allocated=False)
                    key.chmod(0o600)
                state = self._prepare(progress)
                state["accel"], state["disk_cache"] = manifest.accel, manifest.disk_cache
                state["restored_from"] = {"snapshot": name, "created_utc": manifest.created_utc,
                                          "at": snapshot.utc_now()}
                self.save_state(state)
                copies = [(directory / "disks" / f"{d}.raw", self.disk_path(d), True) for d in self.topology.disks]
                for host in hosts:
                    self.vm_paths(host).dir.mkdir(parents=True, exist_ok=True)
                    copies.append((directory / f"{host}.qcow2", self.vm_paths(host).overlay, False))
                self._copy_files(copies, progress, f"snapshot {name}: copying disks back")
                ensure_listener(self)
                timings["copy_s"] = round(time.monotonic() - phase, 2)
                phase = time.monotonic()
                try:
                    for host in hosts:
                        incoming = snapshot.incoming_args(directory / f"{host}.state")
                        self._launch(host, state, progress, extra_args=incoming)
                    self._wait_incoming(hosts, progress)
                    timings["load_s"] = round(time.monotonic() - phase, 2)
                    clients = {}
                    try:
                        for host in hosts:
                            clients[host] = QmpClient(self.vm_paths(host).qmp, timeout=30)
                            clients[host].connect()
                        for host in hosts:
                            clients[host].execute("cont")
                    finally:
                        for client in clients.values():
                            client.close()
                except BaseException:
                    for host in hosts:
                        self.power_off(host)
                    raise
                phase = time.monotonic()
                self._wait_all(hosts, progress)
                timings["ssh_s"] = round(time.monotonic() - phase, 2)
            except SnapshotError:
                raise
            except LabError as error:
                raise SnapshotError(
                    f"restoring snapshot {name} failed: {error}; restore it again, "
                    "or rebuild the lab (bst down, bst up)"
                ) from error
        timings["total_s"] = round(time.monotonic() - started, 2)
        return timings

    def _wait_migrations(self, clients: dict[str, QmpClient], progress: Progress | None) -> None:
        tasks = ({h: progress.add_task(f"{escape(h)}: saving RAM and devices", total=None) for h in clients}
                 if progress else {})

        def saved(host: str) -> bool:
            info = clients[host].execute("query-migrate")
            status = info.get("status")
            if status in ("failed", "cancelled", None):
                reason = info.get("error-desc") or status or "no migration"
                raise SnapshotError(f"saving {host}'s state failed: {reason}")
            if progress:
                ram = info.get("ram", {})
                done = status == "completed"
                progress.update(tasks[host], description=f"{escape(host)}: state saved" if done else None,
                                total=1 if done else ram.get("total") or None,
                                completed=1 if done else ram.get("transferred", 0))
            return status == "completed"

        _poll_each(clients, saved, SNAPSHOT_SAVE_TIMEOUT_SECONDS,
                   lambda pending: f"saving the state of {', '.join(pending)} did not finish within "
                                   f"{SNAPSHOT_SAVE_TIMEOUT_SECONDS:.0f} s", progress, list(tasks.values()))

    def _wait_incoming(self, hosts: list[str], progress: Progress | None) -> None:
        """Until every restored qemu has loaded its state and waits paused (QMP status ``paused``)."""
        task = progress.add_task("loading RAM and devices", total=len(hosts)) if progress else None

        def loaded(host: str) -> bool:
            paths = self.vm_paths(host)
            if self.running_pid(host) is None:
                raise SnapshotError(
                    f"{host}'s qemu exited while loading the snapshot state (it does not fit this qemu "
                    f"or command line); see {paths.qemu_log}"
                )
            try:
                status = qmp_command(paths.qmp, "query-status").get("status")
            except QmpError:
                status = None
            if status not in (None, "inmigrate", "prelaunch", "paused"):
                raise SnapshotError(f"{host} is {status} after loading its state, not paused")
            if status == "paused" and progress and task is not None:
                progress.advance(task)
            return status == "paused"

        _poll_each(hosts, loaded, SNAPSHOT_LOAD_TIMEOUT_SECONDS,
                   lambda pending: f"{', '.join(pending)} did not load the snapshot state within "
                                   f"{SNAPSHOT_LOAD_TIMEOUT_SECONDS:.0f} s", progress, [] if task is None else [task])

    def _copy_files(self, copies: list[tuple[Path, Path, bool]], progress: Progress | None, what: str) -> None:
        total = sum(source.stat().st_size for source, _, _ in copies)
        task = progress.add_task(escape(what), total=total) if progress else None
        try:
            for source, target, allocated in copies:
                snapshot.copy_file(source, inside(self.lab_dir, target), allocated)
                if progress and task is not None:
                    progress.advance(task, source.stat().st_size)
        finally:
            if progress and task is not None:
                progress.remove_task(task)


def _poll_each(hosts: Iterable[str], done: Callable[[str], bool], timeout_s: float,
               timeout_message: Callable[[list[str]], str], progress: Progress | None, tasks: list[Any]) -> None:
    """Asks ``done(host)`` of every host not yet done, every 0.2 s, until all are; SnapshotError with
    ``timeout_message(pending)`` once ``timeout_s`` has passed. The progress ``tasks`` go away either way."""
    deadline = time.monotonic() + timeout_s
    pending = sorted(hosts)
    try:
        while pending:
            pending = [host for host in pending if not done(host)]
            if pending and time.monotonic() > deadline:
                raise SnapshotError(timeout_message(pending))
            if pending:
                time.sleep(0.2)
    finally:
        for task in tasks if progress else []:
            progress.remove_task(task)  # type: ignore[union-attr]
