"""VirtualBox session locks: waiting them out after a power-off, and retrying the calls they refuse.

``controlvm poweroff`` returns once the VM is off, but its VM process still holds the machine's session
for a moment ("being unlocked"). Calls that need the session (``storageattach``, ``modifyvm``,
``unregistervm``) then fail with ``The machine '<vm>' is already locked for a session (or being
unlocked)`` or ``Cannot unregister the machine '<vm>' while it is locked``, code
VBOX_E_INVALID_OBJECT_STATE, exit 1 (packer#2401, vagrant#8104). Vagrant retries such calls (its
driver's ``execute(..., retryable: true)``: 3 tries, 1 s apart) and sleeps 1 s after a forced halt;
Packer sleeps 2 s after ``poweroff`` and retries ``unregistervm`` 5 times. Here the VM's own state
decides: ``showvminfo --machinereadable`` prints ``SessionName="..."`` only while the session is not
unlocked (VBoxManageInfo.cpp), so the provider waits until it is gone, then retries a refused call
until the same deadline, and ends in one line naming the VM and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lab.errors import LabError
from lab.providers.virtualbox.vboxmanage import Runner, VBoxManageError, parse_machine_readable

UNLOCK_TIMEOUT_SECONDS = 60.0
UNLOCK_POLL_SECONDS = 0.5

LOCK_MESSAGES = (
    "is already locked for a session",
    "is already locked by a session",
    "already has a lock request pending",
    "while it is locked",
    "is locked for reading by another task",
    "is locked for writing by another task",
)
"""VirtualBox's words for a refusal that a released session cures (VBOX_E_INVALID_OBJECT_STATE)."""

TRANSIENT_VM_STATES = {"stopping", "saving", "restoring", "starting", "teleporting", "livesnapshotting",
                       "deletingsnapshot", "deletingsnapshotlive", "settingup"}
"""VMState values of a VM on its way somewhere: its session is busy until it arrives."""

NOT_FOUND_MESSAGES = ("Could not find a registered machine", "VBOX_E_OBJECT_NOT_FOUND")


def is_lock_error(err: Exception) -> bool:
    return isinstance(err, VBoxManageError) and any(text in str(err) for text in LOCK_MESSAGES)


def is_not_found(err: Exception) -> bool:
    return isinstance(err, VBoxManageError) and any(text in str(err) for text in NOT_FOUND_MESSAGES)


def session_busy(info: dict[str, str]) -> bool:
    """A session holds the VM (running, or its VM process still exiting) or the VM is between states."""
    return "SessionName" in info or info.get("VMState", "") in TRANSIENT_VM_STATES


class SessionWaiter:
    """Waits for a VM's session to be released; the clock and sleep are injectable for tests."""

    def __init__(self, run: Runner, timeout: float = UNLOCK_TIMEOUT_SECONDS, poll: float = UNLOCK_POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.run = run
        self.timeout = timeout
        self.poll = poll
        self.clock = clock
        self.sleep = sleep

    def vm_info(self, vm: str) -> dict[str, str] | None:
        """``showvminfo --machinereadable``, or None when VirtualBox has no such VM."""
        try:
            return parse_machine_readable(self.run(["showvminfo", vm, "--machinereadable"]))
        except VBoxManageError as err:
            if is_not_found(err):
                return None
            raise

    def _too_late(self, subject: str, started: float, what: str) -> LabError:
        return LabError(
            f"{subject} is still locked by a VirtualBox session after {self.clock() - started:.0f} s "
            f"({what}); close whatever holds it (the VirtualBox GUI, another VBoxManage; "
            "`VBoxManage list runningvms` lists running VMs) and run the command again"
        )

    def wait_unlocked(self, vm: str) -> dict[str, str] | None:
        """The VM's info once no session holds it (None: no such VM); one LabError after the deadline."""
        started = self.clock()
        while True:
            info = self.vm_info(vm)
            if info is None or not session_busy(info):
                return info
            if self.clock() - started >= self.timeout:
                held = info.get("SessionName", "none")
                raise self._too_late(f"VM {vm}", started, f"VMState {info.get('VMState', '?')}, session {held}")
            self.sleep(self.poll)

    def run_unlocked(self, subject: str, argv: Sequence[str]) -> str:
        """Run a VBoxManage call that needs a session, retrying while VirtualBox says it is locked;
        ``subject`` names what is locked in the error (``VM beast-ctrl-a``, ``shared disk d00``)."""
        started = self.clock()
        while True:
            try:
                return self.run(argv)
            except VBoxManageError as err:
                if not is_lock_error(err):
                    raise
                if self.clock() - started >= self.timeout:
                    raise self._too_late(subject, started, str(err).split(" failed: ", 1)[-1]) from None
            self.sleep(self.poll)
