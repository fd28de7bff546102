"""`python -m lab.images.freebsd`: print the preparation recipe's hash, the key the nightly caches the prepared
FreeBSD image under (with the downloaded image's checksum)."""

from __future__ import annotations

import sys

from lab.images.freebsd.prepare import freebsd_recipe_hash


def main(argv: list[str]) -> int:
    if argv:
        print(f"python -m lab.images.freebsd takes no arguments (got {' '.join(argv)}): it prints the recipe hash",
              file=sys.stderr)
        return 2
    print(freebsd_recipe_hash())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
