"""The fence listener as the lab runs it: a process of its own, started by `up` before the VMs, stopped
by `down` by pid file, powering fake-qemu VMs off and on when asked through a VM's fence socket; and,
when the stock ``fence_virt`` binary is at hand (``FENCE_VIRT=/path`` or on PATH), that client itself
speaking to it through a pty, as it speaks to ttyS1 in a guest.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_provider_processes import fake_image, fake_qemu, make_provider, needs_vde  # noqa: F401
from test_snapshot import PUBKEY, store

from lab.fence import read_fence_log
from lab.labdir import owned_pid, processes_of
from lab.providers.qemu import QemuProvider
from lab.providers.snapshot import Manifest, SnapshotError, normalise_argv, topology_hash
from lab.topology import load_topology

pytestmark = needs_vde


@pytest.fixture
def lab_up(make_provider, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.setattr("lab.guests.wait_for_ssh", lambda provider, host, deadline, progress, gone: None)
    provider = make_provider()
    provider.up()
    return provider


def c_request(request: int, domain: bytes, seqno: int) -> bytes:
    return struct.pack("<IBB64sI", 0x61626261, request, 0, domain, seqno)


def reply(response: int) -> bytes:
    return struct.pack("<IB", 0x61626261, response)


class QemuEnd:
    """The VM's side of a fence socket, connected as qemu's ``-chardev socket`` client is."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))

    def ask(self, request: int, domain: str, seqno: int) -> bytes:
        self.sock.sendall(c_request(request, domain.encode(), seqno))
        got = b""
        while len(got) < 5:
            chunk = self.sock.recv(5 - len(got))
            assert chunk, f"the listener closed the connection after {got!r}"
            got += chunk
        return got


def test_up_starts_the_listener_before_the_vms_and_down_stops_it(lab_up):
    provider = lab_up
    pid = owned_pid(provider.fence_pidfile)
    assert pid is not None
    assert all(provider.fence_socket(h).is_socket() for h in provider.topology.hosts)
    started = {h: Path(f"/proc/{provider.running_pid(h)}").stat().st_mtime for h in provider.topology.hosts}
    assert Path(f"/proc/{pid}").stat().st_mtime <= min(started.values())
    provider.down()
    assert owned_pid(provider.fence_pidfile) is None and processes_of(provider.lab_dir) == []
    assert not (provider.lab_dir / "fence").exists()


def test_the_listener_powers_the_labs_vms_off_and_on_and_logs_each_request(lab_up):
    provider = lab_up
    ctrl_a = QemuEnd(provider.fence_socket("ctrl-a"))
    old_pid = provider.running_pid("ctrl-b")
    assert old_pid is not None
    assert ctrl_a.ask(4, "ctrl-b", 1) == reply(0), "status of a running VM: on"
    assert ctrl_a.ask(1, "ctrl-b", 2) == reply(0), "off"
    assert provider.running_pid("ctrl-b") is None
    assert not Path(f"/proc/{old_pid}").exists() or old_pid not in processes_of(provider.lab_dir)
    assert ctrl_a.ask(4, "ctrl-b", 3) == reply(2), "status of a stopped VM: off"
    assert ctrl_a.ask(1, "ctrl-b", 4) == reply(0), "off again: already off is success"
    assert ctrl_a.ask(1, "backup-server", 5) == reply(3), "not a host of this lab: perm"
    assert provider.running_pid("ctrl-a") and provider.running_pid("clnt-1"), "nothing else was touched"
    assert ctrl_a.ask(3, "ctrl-b", 6) == reply(0), "on"
    new_pid = provider.running_pid("ctrl-b")
    assert new_pid is not None and new_pid != old_pid
    assert provider.load_state()["hosts"]["ctrl-b"]["pid"] == new_pid
    log = read_fence_log(provider.fence_log_path())
    assert [(r.requester, r.plug, r.action, r.response, r.seqno, r.state_before) for r in log] == [
        ("ctrl-a", "ctrl-b", "status", "success", 1, "running"),
        ("ctrl-a", "ctrl-b", "off", "success", 2, "running"),
        ("ctrl-a", "ctrl-b", "status", "off", 3, "stopped"),
        ("ctrl-a", "ctrl-b", "off", "success", 4, "stopped"),
        ("ctrl-a", "backup-server", "off", "perm", 5, "unknown"),
        ("ctrl-a", "ctrl-b", "on", "success", 6, "stopped"),
    ]
    ctrl_a.sock.close()


def test_a_dead_listener_is_restarted_by_up_without_relaunching_the_vms(lab_up, make_provider):  # noqa: F811
    provider = lab_up
    pids = {h: provider.running_pid(h) for h in provider.topology.hosts}
    old = owned_pid(provider.fence_pidfile)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while owned_pid(provider.fence_pidfile) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    make_provider().up()
    new = owned_pid(provider.fence_pidfile)
    assert new is not None and new != old
    assert {h: provider.running_pid(h) for h in provider.topology.hosts} == pids
    assert QemuEnd(provider.fence_socket("clnt-1")).ask(4, "ctrl-a", 1) == reply(0)


def test_a_stale_pidfile_naming_another_process_is_neither_trusted_nor_killed(make_provider, monkeypatch):  # noqa: F811
    monkeypatch.setattr("lab.guests.wait_for_ssh", lambda provider, host, deadline, progress, gone: None)
    provider = make_provider()
    provider.fence_pidfile.parent.mkdir(parents=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", str(provider.fence_pidfile)])
    try:
        provider.fence_pidfile.write_text(f"{stranger.pid}\n")
        provider.up()
        listener = owned_pid(provider.fence_pidfile)
        assert listener is not None and listener != stranger.pid
        provider.down()
        assert stranger.poll() is None, "a process that merely names the pid file is not the lab's"
        assert processes_of(provider.lab_dir) == []
    finally:
        stranger.kill()
        stranger.wait()


def test_start_brings_the_listener_back_before_the_host(lab_up, monkeypatch: pytest.MonkeyPatch):
    provider = lab_up
    provider.power_off("clnt-1")
    os.kill(owned_pid(provider.fence_pidfile), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while owned_pid(provider.fence_pidfile) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not provider.fence_socket("clnt-1").exists(), "a stopped listener removes its sockets"
    provider.start("clnt-1")
    assert owned_pid(provider.fence_pidfile) is not None and provider.running_pid("clnt-1") is not None


# --- the stock client ----------------------------------------------------------------------------


def fence_virt_binary() -> str | None:
    return os.environ.get("FENCE_VIRT") or shutil.which("fence_virt")


class PtyBridge:
    """A pty whose master end is joined to a VM's fence socket: the slave is the guest's /dev/ttyS1."""

    def __init__(self, path: Path):
        self.master, slave = os.openpty()
        self.device = os.ttyname(slave)
        os.close(slave)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while not self.done.is_set():
            ready, _, _ = select.select([self.master, self.sock], [], [], 0.1)
            for end in ready:
                try:
                    data = os.read(self.master, 4096) if end == self.master else self.sock.recv(4096)
                except OSError:
                    continue
                if data:
                    if end == self.master:
                        self.sock.sendall(data)
                    else:
                        os.write(self.master, data)

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.sock.close()
        os.close(self.master)


@pytest.mark.skipif(fence_virt_binary() is None,
                    reason="no fence_virt: `nox -s tests` unpacks it into .nox/host-tools/bin (or FENCE_VIRT=...)")
def test_the_stock_fence_virt_client_fences_through_its_serial_port(lab_up):
    provider = lab_up
    bridge = PtyBridge(provider.fence_socket("ctrl-a"))

    def fence_virt(action: str, plug: str | None = None) -> subprocess.CompletedProcess:
        named = ["-n", plug] if plug else []
        return subprocess.run([fence_virt_binary(), "-D", bridge.device, "-o", action, *named, "-t", "20"],
                              capture_output=True, text=True, timeout=60)

    try:
        assert fence_virt("status", "ctrl-b").returncode == 0
        done = fence_virt("off", "ctrl-b")
        assert done.returncode == 0, done.stderr
        assert provider.running_pid("ctrl-b") is None
        assert fence_virt("status", "ctrl-b").returncode == 2
        assert fence_virt("off", "mail-server").returncode != 0
        listed = fence_virt("list")
        assert listed.returncode == 0, listed.stderr
        assert [line.split()[0::2] for line in listed.stdout.splitlines()] == [
            ["ctrl-a", "on"], ["ctrl-b", "off"], ["clnt-1", "on"]]
    finally:
        bridge.close()
    log = read_fence_log(provider.fence_log_path())
    assert [(r.requester, r.plug, r.action, r.response) for r in log][:4] == [
        ("ctrl-a", "ctrl-b", "status", "success"), ("ctrl-a", "ctrl-b", "off", "success"),
        ("ctrl-a", "ctrl-b", "status", "off"), ("ctrl-a", "mail-server", "off", "perm")]


def test_a_snapshot_restore_starts_the_listener_before_it_launches_a_vm(make_provider, fake_image,  # noqa: F811
                                                                         monkeypatch: pytest.MonkeyPatch):
    provider = make_provider()
    argv = {h: normalise_argv(provider.qemu_command(h, fake_image, 0, "tcg", PUBKEY), provider.lab_dir)
            for h in provider.topology.hosts}
    store(provider, Manifest(
        name="provisioned", created_utc="2026-11-25T15:00:00+00:00", provider="qemu", lab="beast",
        lab_dir=str(provider.lab_dir), topology_source=provider.topology.source,
        topology_hash=topology_hash(provider.topology), image_name=fake_image.name,
        image_hash=fake_image.recipe_hash, accel="tcg", disk_cache="none", hosts=list(provider.topology.hosts),
        argv=argv,
    ))
    (provider.lab_dir / "snapshots" / "provisioned" / "ssh" / "id_ed25519").write_text("not a key\n")
    monkeypatch.setattr(type(provider), "_copy_files", lambda self, copies, progress, what: None)
    seen: list[int | None] = []

    def launch(self, host, state, progress, extra_args=None):
        seen.append(owned_pid(self.fence_pidfile))
        raise SnapshotError("stop here: the launch was reached")

    monkeypatch.setattr(type(provider), "_launch", launch)
    with pytest.raises(SnapshotError, match="the launch was reached"):
        provider.snapshot_restore("provisioned")
    assert seen and seen[0] is not None


MONITORED_VM = textwrap.dedent("""\
    # One command at a time, as the provider's QmpClient sends them: each arrival is one JSON object.
    import json, os, signal, socket, sys
    qmp_path, record = sys.argv[1], sys.argv[2]
    def note(what):
        with open(record, "a") as out:
            out.write(what + "\\n")
    signal.signal(signal.SIGTERM, lambda *a: (note("SIGTERM"), os._exit(0)))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(qmp_path)
    server.listen(1)
    running = True
    while True:
        conn, _ = server.accept()
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\\r\\n')
        pending = b""
        while chunk := conn.recv(4096):
            pending += chunk
            try:
                request = json.loads(pending)
            except ValueError:
                continue
            pending = b""
            command = request["execute"]
            note(command)
            running = {"stop": False, "cont": True}.get(command, running)
            answer = {"status": "running" if running else "paused", "running": running} \\
                if command == "query-status" else {}
            conn.sendall(json.dumps({"return": answer, "id": request.get("id")}).encode() + b"\\r\\n")
            if command == "quit":
                os._exit(0)
        conn.close()
""")

MONITORED_QEMU = textwrap.dedent("""\
    #!{python}
    import subprocess, sys
    args = sys.argv[1:]
    pidfile = args[args.index("-pidfile") + 1]
    qmp = args[args.index("-qmp") + 1].removeprefix("unix:").split(",")[0]
    record = pidfile.replace("qemu.pid", "monitor.log")
    child = subprocess.Popen(
        [sys.executable, "-c", {script!r}, qmp, record, "fake-qemu", "-pidfile", pidfile],
        start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import os, time
    while not os.path.exists(qmp):
        time.sleep(0.02)
    open(pidfile, "w").write(f"{{child.pid}}\\n")
""")


def test_a_paused_vm_is_on_and_is_powered_off_through_its_monitor(tmp_path: Path, fake_image,  # noqa: F811
                                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("lab.guests.wait_for_ssh", lambda provider, host, deadline, progress, gone: None)
    qemu = tmp_path / "monitored-qemu"
    qemu.write_text(MONITORED_QEMU.format(python=sys.executable, script=MONITORED_VM))
    qemu.chmod(0o755)
    provider = QemuProvider(load_topology(), lab_dir=tmp_path / "lab", image=fake_image, boot_timeout_s=2,
                            accel="tcg", qemu=str(qemu))
    try:
        provider.up()
        provider.pause("ctrl-b")
        assert provider.host_status("ctrl-b").state == "paused"
        ctrl_a = QemuEnd(provider.fence_socket("ctrl-a"))
        assert ctrl_a.ask(4, "ctrl-b", 1) == reply(0), "a paused VM is on"
        assert ctrl_a.ask(1, "ctrl-b", 2) == reply(0)
        assert provider.running_pid("ctrl-b") is None
        commands = (provider.vm_paths("ctrl-b").dir / "monitor.log").read_text().split()
        assert commands[-1] == "quit" and "SIGTERM" not in commands, "powered off by QMP quit, not a signal"
        assert [(r.action, r.state_before) for r in read_fence_log(provider.fence_log_path())] == [
            ("status", "paused"), ("off", "paused")]
        ctrl_a.sock.close()
    finally:
        provider.down()
    assert processes_of(provider.lab_dir) == []
