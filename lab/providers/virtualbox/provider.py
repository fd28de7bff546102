"""The VirtualBox provider: the paper's own environment, three FreeBSD 10.3 VMs driven by Vagrant.

Lifecycle goes through python-vagrant on the top-level Vagrantfile, so ``bst up`` and a plain
``vagrant up`` build the same machines. Shared media and host-only interfaces are prepared here with
VBoxManage (also run by the Vagrantfile's ``before :up`` trigger); abrupt power-off goes through pyvbox
when the VirtualBox SDK is importable, else ``VBoxManage controlvm``.

Root access: the official FreeBSD box has no sudo and its ``vagrant`` user (csh, group wheel) may ``su``
with root's password ``vagrant``. After boot the provider logs in as ``vagrant`` with Vagrant's key,
uploads the lab's public key and a small script, and runs ``su -m root -c 'sh SCRIPT'`` on a pty,
answering the ``Password:`` prompt; the script authorises the lab key for root and sets
``PermitRootLogin without-password``, and keeps the box's first-boot settings out of the lab (see
firstboot.py): the provider then waits until a firstboot reboot can no longer come. From then on every
lab command is root over the lab key. VirtualBox session locks after a power-off: see sessions.py;
which Vagrant drives which VirtualBox, and where networks.conf applies: compat.py.

Relied on: VirtualBox manual ch. 8 (VBoxManage createmedium ``--variant Fixed``, modifymedium
``--type shareable``, storagectl ``--add sata|sas --controller IntelAhci|LSILogicSAS``, storageattach
``--mtype shareable --nonrotational``, hostonlyif create/ipconfig, controlvm poweroff/pause/resume,
``--uart1 --uartmode1 file``) and ch. 6 (host-only ranges, /etc/vbox/networks.conf, since 6.1.28);
Vagrant 2.3.4's VirtualBox provider source (``customize`` events pre-import/pre-boot/post-boot/post-comm,
destroy = ``unregistervm --delete``, which deletes attached media) and its trigger ``ruby`` blocks;
FreeBSD's release/scripts/box.ovf (system disk on the PIIX4 IDE controller, NAT MAC 080027D14C66).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import Progress

from lab.environment import env_text
from lab.errors import LabError, MissingToolError
from lab.labdir import checked_lab_dir, default_lab_dir, inside, lab_lock
from lab.providers.base import HostState, HostStatus, Provider, SshTarget
from lab.providers.virtualbox import firstboot, layout
from lab.providers.virtualbox.compat import check_vagrant_drives, parse_vagrant_version, uses_host_only_networks
from lab.providers.virtualbox.sessions import SessionWaiter, is_not_found
from lab.providers.virtualbox.storagecheck import check_storage
from lab.providers.virtualbox.vboxmanage import (
    NETWORKS_CONF,
    Runner,
    VBoxManage,
    VBoxManageError,
    check_host_only_ranges,
    ensure_host_only_networks,
    parse_machine_readable,
    parse_medium_users,
    parse_version,
    read_networks_conf,
)
from lab.topology import Disk, Role, Topology

VAGRANT_ROOT = Path(__file__).resolve().parents[3]
"""The checkout holding the top-level Vagrantfile."""

SU_TIMEOUT_SECONDS = 60.0
SSH_RETRY_SECONDS = 3.0

VAGRANT_STATES = {
    "running": HostState.RUNNING,
    "paused": HostState.PAUSED,
    "poweroff": HostState.STOPPED,
    "aborted": HostState.STOPPED,
    "saved": HostState.STOPPED,
    "not_created": HostState.ABSENT,
    "not created": HostState.ABSENT,
}
RUNNING_VM_STATES = {"running", "paused", "stuck", "starting", "restoring"}

VagrantFactory = Callable[[Path, dict[str, str]], Any]


def default_vagrant_factory(root: Path, env: dict[str, str]) -> Any:
    if shutil.which("vagrant") is None:
        raise MissingToolError("vagrant is not on PATH, so the virtualbox provider cannot run; "
                               "install it: apt-get install -y vagrant, or use --provider qemu")
    import vagrant

    return vagrant.Vagrant(root=str(root), env=env, quiet_stdout=True, quiet_stderr=True)


def load_vbox_api() -> Any | None:
    """pyvbox's VirtualBox object when the VirtualBox SDK (vboxapi) works here, else None."""
    try:
        import virtualbox

        return virtualbox.VirtualBox()
    except Exception:  # ImportError, or pyvbox present without a working SDK (EnvironmentError, VBoxError)
        return None


class VirtualBoxProvider(Provider):
    """The lab in VirtualBox, shaped by the Vagrantfile and the topology's storage layout."""

    name = "virtualbox"

    def __init__(
        self,
        topology: Topology,
        lab_dir: Path | None = None,
        *,
        vboxmanage: Runner | None = None,
        vagrant_factory: VagrantFactory = default_vagrant_factory,
        vbox_api_loader: Callable[[], Any | None] = load_vbox_api,
        networks_conf: Path = NETWORKS_CONF,
        vagrant_root: Path = VAGRANT_ROOT,
        host_platform: str = sys.platform,
    ):
        super().__init__(topology)
        self.lab_dir = checked_lab_dir(lab_dir or default_lab_dir(topology.lab.name))
        self.vboxmanage: Runner = vboxmanage or VBoxManage()
        self.vagrant_factory = vagrant_factory
        self.vbox_api_loader = vbox_api_loader
        self.networks_conf = networks_conf
        self.vagrant_root = vagrant_root
        self.host_platform = host_platform
        self.pyvbox_failure: str | None = None
        self.first_boot: dict[str, firstboot.FirstBoot] = {}
        self.sessions = SessionWaiter(self.vboxmanage)
        self._vagrant: Any = None

    # --- files ---------------------------------------------------------------------------------------

    def path(self, target: Path) -> Path:
        """A path the lab writes or deletes (itself or through VirtualBox), checked to stay inside the lab
        directory with no symlink on the way (lab.labdir.inside)."""
        return inside(self.lab_dir, target)

    @property
    def key_path(self) -> Path:
        return self.path(self.lab_dir / "ssh" / "id_ed25519")

    def medium(self, disk: Disk) -> Path:
        return self.path(layout.medium_path(self.lab_dir, disk))

    def vm_name(self, host: str) -> str:
        return layout.vm_name(self.topology, host)

    def console_log(self, host: str) -> Path:
        self.check_host(host)
        return self.path(layout.console_log_path(self.lab_dir, host))

    # --- Vagrant -------------------------------------------------------------------------------------

    def vagrant_env(self) -> dict[str, str]:
        """What the Vagrantfile reads: this topology, this lab directory, this Python."""
        source = Path(self.topology.source) if self.topology.source else None
        if source is None or not source.is_file():
            raise LabError(f"the virtualbox provider needs the topology as a file (got {self.topology.source!r}); "
                           "pass --topology FILE")
        env = dict(os.environ)
        env.update(BEAST_TOPOLOGY=str(source.resolve()), BEAST_LAB_DIR=str(self.lab_dir.resolve()),
                   BEAST_PYTHON=sys.executable, BEAST_BOX=layout.box_name())
        return env

    def vagrant(self) -> Any:
        if self._vagrant is None:
            if not (self.vagrant_root / "Vagrantfile").is_file():
                raise LabError(f"no Vagrantfile in {self.vagrant_root}; run bst from a BeaST Lab checkout")
            self._vagrant = self.vagrant_factory(self.vagrant_root, self.vagrant_env())
        return self._vagrant

    def _vagrant_call(self, action: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except subprocess.CalledProcessError as err:
            raise LabError(f"`vagrant {action}` failed (exit {err.returncode}); run `vagrant {action}` in "
                           f"{self.vagrant_root} to see Vagrant's message") from None

    def check_box(self) -> None:
        """The box must be installed: Vagrant would otherwise try a download this lab cannot rely on."""
        box = layout.box_name()
        boxes = self._vagrant_call("box list", self.vagrant().box_list)
        if not any(b.name == box and (b.provider or "virtualbox") == "virtualbox" for b in boxes):
            raise LabError(
                f"Vagrant box {box} (virtualbox) is not installed; add it with "
                f"`vagrant box add {box} --provider virtualbox` (or `vagrant box add --name {box} FILE.box`), "
                "or set BEAST_BOX to an installed FreeBSD 10.3 box"
            )

    # --- preparation (also run by the Vagrantfile's trigger) ------------------------------------------

    def vagrant_version(self) -> tuple[int, int, int]:
        return parse_vagrant_version(self._vagrant_call("--version", self.vagrant().version))

    def check_host_machine(self, vagrant_version: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
        """VirtualBox's version, after the checks that would otherwise fail later with a vaguer message:
        this Vagrant drives this VirtualBox here (when its version is known), networks.conf allows the lab."""
        version = parse_version(self.vboxmanage(["--version"]))
        if vagrant_version is not None:
            check_vagrant_drives(version, vagrant_version, self.host_platform)
        check_host_only_ranges(self.topology, version, read_networks_conf(self.networks_conf), self.networks_conf,
                               platform=self.host_platform)
        return version

    def prepare(self, vagrant_version: tuple[int, int, int] | None = None) -> dict[str, str]:
        """Host-only interfaces and shared media, created when missing; network -> interface. On macOS
        with VirtualBox >= 7 there are no host-only interfaces: Vagrant makes host-only networks itself."""
        version = self.check_host_machine(vagrant_version)
        for host in self.host_names():
            self.console_log(host)  # VirtualBox writes it: refused here if it would land outside the lab
        interfaces = {}
        if not uses_host_only_networks(version, self.host_platform):
            interfaces = ensure_host_only_networks(self.vboxmanage, layout.host_only_networks(self.topology))
        self.ensure_media()
        return interfaces

    def ensure_media(self) -> None:
        for disk in self.topology.disks.values():
            path = self.medium(disk)
            if path.exists():
                continue
            self.path(path.parent).mkdir(parents=True, exist_ok=True)
            for command in layout.create_medium_commands(disk, path):
                self.vboxmanage(command)

    def ensure_key(self) -> Path:
        if not self.key_path.exists():
            if shutil.which("ssh-keygen") is None:
                raise MissingToolError("ssh-keygen is not on PATH; install it: apt-get install -y openssh-client")
            self.path(self.key_path.parent).mkdir(parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"beast-lab-{self.topology.lab.name}",
                            "-f", str(self.key_path)], check=True, capture_output=True)
        return self.key_path

    # --- lifecycle -----------------------------------------------------------------------------------

    def up(self, progress: Progress | None = None) -> None:
        task = progress.add_task("virtualbox lab", total=2 + len(self.topology.hosts)) if progress else None

        def advance(what: str) -> None:
            if progress is not None and task is not None:
                progress.update(task, advance=1, description=what)

        with lab_lock(self.lab_dir, "up"):
            self.check_box()
            self.prepare(self.vagrant_version())
            self.ensure_key()
            advance("shared disks and host-only networks ready")
            self._vagrant_call("up", lambda: self.vagrant().up(provider="virtualbox"))
            advance("VMs booted")
            for host in self.host_names():
                self.verify_storage(host)
                self.ensure_root_access(host)
                self.wait_for_ssh(host)
                self.settle_first_boot(host)
                advance(f"{escape(host)} answers SSH")

    def start(self, host: str, progress: Progress | None = None) -> None:
        self.check_host(host)
        info = self.vm_info(host)
        if info is not None and info.get("VMState") not in RUNNING_VM_STATES:
            self.sessions.wait_unlocked(self.vm_name(host))
        self._vagrant_call(f"up {host}", lambda: self.vagrant().up(vm_name=host, provider="virtualbox"))
        self.ensure_root_access(host)
        self.wait_for_ssh(host)
        self.settle_first_boot(host)

    def down(self) -> None:
        """Detach shared media, destroy the VMs, delete the media; refuse while another VM uses one."""
        with lab_lock(self.lab_dir, "down"):
            self.check_no_foreign_users()
            for host in self.topology.controllers:
                self.release_disks(host.name)
            self._vagrant_call("destroy", lambda: self.vagrant().destroy())
            for disk in self.topology.disks.values():
                path = self.medium(disk)
                if path.exists():
                    self.sessions.run_unlocked(f"shared disk {disk.name}", layout.delete_medium_command(path))

    def check_no_foreign_users(self) -> None:
        ours = {self.vm_name(host) for host in self.topology.hosts}
        for disk in self.topology.disks.values():
            path = self.medium(disk)
            if not path.exists():
                continue
            foreign = [u for u in parse_medium_users(self.vboxmanage(["showmediuminfo", "disk", str(path)]))
                       if u.vm not in ours]
            if foreign:
                vms = ", ".join(f"{u.vm} ({u.uuid})" for u in foreign)
                raise LabError(
                    f"shared disk {disk.name} ({path}) is still used by VM {vms}, which is not part of lab "
                    f"{self.topology.lab.name}; detach it there (VBoxManage storageattach <vm> ... --medium none) "
                    "or remove that VM, then run `bst down` again"
                )

    def vm_info(self, host: str) -> dict[str, str] | None:
        """``showvminfo --machinereadable`` of the host's VM, or None when VirtualBox has no such VM."""
        try:
            return parse_machine_readable(self.vboxmanage(["showvminfo", self.vm_name(host), "--machinereadable"]))
        except VBoxManageError as err:
            if is_not_found(err):
                return None
            raise

    def release_disks(self, host: str) -> None:
        """Power the VM off and empty its shared-disk ports (Vagrant's destroy deletes attached media).

        The detach waits until the powered-off VM's session is released (see sessions.py): right after
        ``controlvm poweroff`` VirtualBox refuses ``storageattach`` while the VM process still exits.
        """
        self.check_host(host)
        info = self.vm_info(host)
        if info is None:
            return
        vm = self.vm_name(host)
        if info.get("VMState") in RUNNING_VM_STATES:
            self.vboxmanage(["controlvm", vm, "poweroff"])
        info = self.sessions.wait_unlocked(vm)
        if info is None:
            return
        for command in layout.detach_commands(self.topology, self.topology.hosts[host], vm):
            controller, port = command[3], command[5]
            if info.get(f"{controller}-{port}-0", "none") != "none":
                self.sessions.run_unlocked(f"VM {vm}", command)

    def verify_storage(self, host: str) -> None:
        """The storage a controller's VM must have once booted (see storagecheck.py)."""
        if self.topology.hosts[host].role is Role.CONTROLLER:
            check_storage(self.topology, self.lab_dir, host, self.vm_info(host) or {}, self.vboxmanage)

    # --- power ---------------------------------------------------------------------------------------

    def _with_console(self, host: str, action: Callable[[Any], Any]) -> bool:
        """Run ``action(console)`` through pyvbox; False when the SDK is not available here or any pyvbox
        call fails. pyvbox is generated for one VirtualBox (6.1.16 in 1.3.x): against another, any call can
        raise its VBoxError subclasses, AttributeError ("Failed to find attribute ..."), ValueError (an enum
        value it does not know) or OSError (its version assertion), so every call falls back to VBoxManage."""
        self.pyvbox_failure = None
        vbox = self.vbox_api_loader()
        if vbox is None:
            return False
        session = None
        try:
            session = vbox.find_machine(self.vm_name(host)).create_session()
            action(session.console)
        except Exception as err:  # pyvbox's failures have no common base class
            self.pyvbox_failure = f"{type(err).__name__}: {err}"
            return False
        finally:
            if session is not None:
                try:
                    session.unlock_machine()
                except Exception as err:  # the action's outcome stands; the session closes with the VM
                    self.pyvbox_failure = f"{type(err).__name__}: {err}"
        return True

    def power_off(self, host: str) -> None:
        self.check_host(host)
        if self._with_console(host, lambda console: console.power_down().wait_for_completion(-1)):
            return
        vm = self.vm_name(host)
        if self.pyvbox_failure is not None:
            info = self.vm_info(host)
            if info is None or info.get("VMState") not in RUNNING_VM_STATES:
                return  # pyvbox's power-down got through before the call that failed
        self.vboxmanage(["controlvm", vm, "poweroff"])

    def pause(self, host: str) -> None:
        self.check_host(host)
        self.vboxmanage(["controlvm", self.vm_name(host), "pause"])

    def resume(self, host: str) -> None:
        self.check_host(host)
        self.vboxmanage(["controlvm", self.vm_name(host), "resume"])

    # --- state and SSH -------------------------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        reported = {s.name: s for s in self._vagrant_call("status", self.vagrant().status)}
        statuses = []
        for host in self.host_names():
            entry = reported.get(host)
            vagrant_state = entry.state if entry else "not_created"
            state = VAGRANT_STATES.get(vagrant_state, HostState.STOPPED)
            port = None
            if state is HostState.RUNNING:
                try:
                    port = self._vagrant_ssh(host)[0]
                except LabError:
                    port = None
            statuses.append(HostStatus(host, state, ssh_port=port, accel="vbox",
                                       detail=f"{self.vm_name(host)}: {vagrant_state}"))
        return statuses

    def _vagrant_ssh(self, host: str) -> tuple[int, str, Path]:
        """(port, user, key) Vagrant uses to reach the box user; only on loopback."""
        conf = self._vagrant_call(f"ssh-config {host}", lambda: self.vagrant().conf(vm_name=host))
        hostname = conf.get("HostName", "")
        if hostname not in ("127.0.0.1", "localhost"):
            raise LabError(f"Vagrant reaches {host} at {hostname}, not a loopback forwarded port; "
                           "keep Vagrant's default NAT SSH forwarding")
        key = conf.get("IdentityFile", "").strip('"')
        return int(conf["Port"]), conf.get("User", "vagrant"), Path(key)

    def ssh_target(self, host: str) -> SshTarget:
        self.check_host(host)
        port, _, _ = self._vagrant_ssh(host)
        return SshTarget(port=port, key_path=self.key_path, host="127.0.0.1", user="root", name=host)

    def ensure_root_access(self, host: str) -> None:
        """Authorise the lab key for root through ``su`` as the box user (the box has no sudo)."""
        from invoke import Responder

        from lab import remote

        port, user, key = self._vagrant_ssh(host)
        public_key = Path(f"{self.ensure_key()}.pub").read_text()
        conn = remote.connect(SshTarget(port=port, key_path=key, user=user, name=host))
        try:
            conn.put(io.StringIO(public_key), firstboot.REMOTE_KEY)
            interfaces = list(layout.guest_interfaces(self.topology.hosts[host]).values())
            conn.put(io.StringIO(firstboot.root_access_script(interfaces)), firstboot.REMOTE_SCRIPT)
            password = env_text("BEAST_ROOT_PASSWORD")
            password = layout.ROOT_PASSWORD if password is None else password
            su_password = Responder(pattern=r"Password:", response=f"{password}\n")
            result = conn.run(firstboot.SU_COMMAND, pty=True, hide=True, warn=True, in_stream=False,
                              timeout=SU_TIMEOUT_SECONDS, watchers=[su_password])
        finally:
            conn.close()
        if result.exited != 0:
            last = (result.stdout.strip().splitlines() or ["no output"])[-1]
            raise LabError(f"{host}: `{firstboot.SU_COMMAND}` as {user} exited {result.exited} ({last}); "
                           "check root's password (set BEAST_ROOT_PASSWORD) and that the box user is in group wheel")
        self.first_boot[host] = firstboot.parse_first_boot(host, result.stdout)

    def settle_first_boot(self, host: str) -> None:
        """Wait out the moment after the box's first boot in which its rc(8) may still reboot it (see
        firstboot.py); then the host must answer SSH again, rebooted or not."""
        status = self.first_boot.pop(host, None)
        left = status.reboot_grace_left() if status else 0.0
        if left > 0:
            time.sleep(left)
            self.wait_for_ssh(host)

    def wait_for_ssh(self, host: str, timeout: float | None = None) -> None:
        from lab import remote

        self.check_host(host)
        timeout = self.topology.lab.boot_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                remote.connect(self.ssh_target(host)).close()
                return
            except LabError as err:
                last = str(err)
            if time.monotonic() >= deadline:
                raise LabError(f"{host} did not accept the lab key for root within {timeout:.0f} s ({last}); "
                               f"see its console log {self.console_log(host)}")
            time.sleep(SSH_RETRY_SECONDS)
