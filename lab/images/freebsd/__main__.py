"""`python -m lab.images.freebsd`: print the preparation recipe's hash, the key the nightly caches the prepared
FreeBSD image under (the downloaded source is fixed: its checksum is checked, not hashed into the key)."""

from __future__ import annotations

import argparse
import sys

from lab.images.freebsd.prepare import freebsd_recipe_hash

PARSER = argparse.ArgumentParser(
    prog="python -m lab.images.freebsd",
    description="Print the hash of the FreeBSD image's preparation recipe (no arguments).",
)


def main(argv: list[str]) -> int:
    PARSER.parse_args(argv)
    print(freebsd_recipe_hash())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
