"""``python -m lab.providers.qemu.fence --lab-dir DIR -pidfile PIDFILE``: serve the lab's fence sockets until
SIGTERM.

Started by the qemu provider (lab.providers.qemu.fence.service), not by hand; the pid file is written once
every socket is bound, and names this process for the provider's owned-pid checks."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from lab.errors import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.providers.qemu.fence", description=__doc__)
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("-pidfile", type=Path, required=True)
    args = parser.parse_args(argv)
    from lab.fence.listener import FenceListener
    from lab.providers.qemu.fence.power import ProviderPower, provider_of
    from lab.providers.qemu.fence.service import listener_files

    try:
        provider = provider_of(args.lab_dir.resolve())
        sockets = {host: provider.fence_socket(host) for host in provider.topology.hosts}
        listener = FenceListener(ProviderPower(provider), sockets, provider.fence_log_path(),
                                 listener_files(provider)["text_log"])
        listener.bind()
    except (LabError, OSError) as err:
        print(f"fence listener: {err}", file=sys.stderr)
        return 2
    tmp = args.pidfile.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(args.pidfile)
    signal.signal(signal.SIGTERM, lambda signum, frame: listener.stop())
    signal.signal(signal.SIGINT, lambda signum, frame: listener.stop())
    listener.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
