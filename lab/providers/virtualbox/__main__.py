"""What the Vagrantfile calls: ``python3 -m lab.providers.virtualbox export-json | prepare | release-disks HOST``
(``prepare --vagrant-version V``: the trigger passes Vagrant's own version, checked against VirtualBox's).

The topology comes from ``--topology`` or BEAST_TOPOLOGY (default: the paper's), the lab directory from
``--lab-dir`` or BEAST_LAB_DIR (default ``.lab/<lab name>``), so ``bst`` and a plain ``vagrant`` agree.
"""

from __future__ import annotations

import argparse
import json
import sys

from lab.environment import env_text
from lab.errors import LabError
from lab.labdir import checked_lab_dir, default_lab_dir
from lab.providers.virtualbox.compat import parse_vagrant_version
from lab.providers.virtualbox.layout import vagrant_export
from lab.providers.virtualbox.provider import VAGRANT_ROOT, VirtualBoxProvider
from lab.topology import load_topology
from lab.topology.load import check_virtualbox_addresses


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m lab.providers.virtualbox", description=__doc__)
    parser.add_argument("--topology", default=env_text("BEAST_TOPOLOGY") or None)
    parser.add_argument("--lab-dir", default=env_text("BEAST_LAB_DIR") or None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("export-json", help="print the topology as the Vagrantfile reads it")
    prepare = commands.add_parser("prepare", help="create missing host-only interfaces and shared media")
    prepare.add_argument("--vagrant-version", help="the running Vagrant's version (the Vagrantfile passes its own)")
    release = commands.add_parser("release-disks", help="power a controller off and detach its shared disks")
    release.add_argument("host")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        topology = load_topology(args.topology)
        check_virtualbox_addresses(topology)
        lab_dir = checked_lab_dir(args.lab_dir or default_lab_dir(topology.lab.name, VAGRANT_ROOT))
        if args.command == "export-json":
            json.dump(vagrant_export(topology, lab_dir), sys.stdout, indent=2)
            sys.stdout.write("\n")
        elif args.command == "prepare":
            vagrant = parse_vagrant_version(args.vagrant_version) if args.vagrant_version else None
            VirtualBoxProvider(topology, lab_dir).prepare(vagrant)
        else:
            VirtualBoxProvider(topology, lab_dir).release_disks(args.host)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
