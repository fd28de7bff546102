"""The host side of fence_virt's serial mode: one unix socket per VM of the lab, each the far end of that
VM's second UART (ttyS1), answering on/off/status for the lab's own hosts only.

qemu connects to the socket as a client and reconnects when its VM restarts, so every socket accepts
again at any time; the VM whose socket a request came through is its requester. Requests are handled
one at a time, in arrival order: two controllers fencing each other are served first come, first served.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lab.fence.log import FenceRequest, append_request, note, now
from lab.fence.protocol import (
    Action,
    FenceProtocolError,
    Request,
    RequestReader,
    Response,
    encode_hostlist,
    encode_reply,
)

ON_STATES = ("running", "paused")
"""A paused VM still holds its pools and sessions: for fencing it is on."""
READ_SIZE = 4096


class Power(Protocol):
    """What the listener needs of a provider: a host's state, and powering it off and on."""

    hosts: list[str]

    def state(self, host: str) -> str:
        """running, paused, stopped or absent."""

    def off(self, host: str) -> None: ...

    def on(self, host: str) -> None: ...

    def uuid(self, host: str) -> str: ...


@dataclass
class Port:
    """One VM's fence socket and qemu's current connection to it."""

    host: str
    server: socket.socket
    connection: socket.socket | None = None
    reader: RequestReader = field(default_factory=RequestReader)


class FenceListener:
    """Serves every VM's fence socket until stopped; logs each request to ``json_log`` and ``text_log``."""

    def __init__(self, power: Power, sockets: dict[str, Path], json_log: Path, text_log: Path):
        self.power = power
        self.sockets = sockets
        self.json_log = json_log
        self.text_log = text_log
        self.selector = selectors.DefaultSelector()
        self.ports: dict[str, Port] = {}
        self.running = False

    def bind(self) -> None:
        """Bind every socket (replacing a stale one): qemu may connect as soon as this returns."""
        for host, path in self.sockets.items():
            path.unlink(missing_ok=True)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            server.listen(4)
            server.setblocking(False)
            self.ports[host] = Port(host, server)
            self.selector.register(server, selectors.EVENT_READ, (self.ports[host], "accept"))
        note(self.text_log, f"listening for {', '.join(self.sockets)} (pid {os.getpid()})")

    def serve_forever(self) -> None:
        """Until ``stop`` (the process's SIGTERM handler calls it); closes and removes the sockets."""
        self.running = True
        try:
            while self.running:
                for key, _ in self.selector.select(timeout=0.2):
                    port, kind = key.data
                    if kind == "accept":
                        self._accept(port)
                    else:
                        self._receive(port)
        finally:
            self.close()

    def close(self) -> None:
        for port in self.ports.values():
            self._drop(port)
            self.selector.unregister(port.server)
            port.server.close()
            self.sockets[port.host].unlink(missing_ok=True)
        self.ports.clear()
        note(self.text_log, "stopped")

    def answer(self, requester: str, request: Request) -> bytes:
        """The reply to one request, after acting on it; the request is logged."""
        started = time.monotonic()
        stamp, epoch = now()
        plug = request.domain
        known = plug in self.power.hosts
        before = self.power.state(plug) if known else "unknown"
        reply = b""
        if request.action in (Action.NULL, Action.DEVSTATUS):
            response = Response.SUCCESS
        elif request.action is Action.HOSTLIST:
            hosts = [(h, self.power.uuid(h), self.power.state(h) in ON_STATES) for h in self.power.hosts]
            response, reply = Response.HOSTLIST, encode_hostlist(hosts)
        elif not known:
            response = Response.PERM
        elif request.action is Action.STATUS:
            response = Response.SUCCESS if before in ON_STATES else Response.OFF
        else:
            response = self._act(request.action, plug, before)
        record = FenceRequest(
            time_utc=stamp, epoch=epoch, requester=requester, plug=plug, action=request.action.name.lower(),
            response=response.name.lower(), seqno=request.seqno, state_before=before,
            seconds=round(time.monotonic() - started, 3),
        )
        append_request(self.json_log, self.text_log, record)
        return reply or encode_reply(response)

    def _act(self, action: Action, plug: str, before: str) -> Response:
        try:
            if action in (Action.OFF, Action.REBOOT) and before in ON_STATES:
                self.power.off(plug)
            if action in (Action.ON, Action.REBOOT):
                self.power.on(plug)
        except Exception as err:  # noqa: BLE001 - any failure is fence_virt's "fail", and logged
            note(self.text_log, f"{action.name.lower()} {plug} failed: {err}")
            return Response.FAIL
        return Response.SUCCESS

    def _accept(self, port: Port) -> None:
        try:
            connection, _ = port.server.accept()
        except BlockingIOError:
            return
        self._drop(port)
        connection.setblocking(False)
        port.connection, port.reader = connection, RequestReader()
        self.selector.register(connection, selectors.EVENT_READ, (port, "read"))
        note(self.text_log, f"{port.host}'s fence port connected")

    def _receive(self, port: Port) -> None:
        assert port.connection is not None
        try:
            data = port.connection.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            note(self.text_log, f"{port.host}'s fence port disconnected")
            self._drop(port)
            return
        for item in port.reader.feed(data):
            if isinstance(item, FenceProtocolError):
                note(self.text_log, f"from {port.host}: malformed input ignored: {item}")
                continue
            try:
                reply = self.answer(port.host, item)
            except Exception as err:  # noqa: BLE001 - one bad request must not end the lab's fencing
                note(self.text_log, f"{port.host}'s {item.action.name.lower()} {item.domain} failed: {err}")
                reply = encode_reply(Response.FAIL)
            try:
                port.connection.setblocking(True)
                port.connection.sendall(reply)
                port.connection.setblocking(False)
            except OSError as err:
                note(self.text_log, f"reply to {port.host} lost: {err}")
                self._drop(port)
                return

    def _drop(self, port: Port) -> None:
        if port.connection is not None:
            self.selector.unregister(port.connection)
            port.connection.close()
            port.connection = None

    def stop(self) -> None:
        self.running = False
