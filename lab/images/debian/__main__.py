"""`python -m lab.images.debian`: print the default recipe's hash, the key the nightly caches the image under."""

from __future__ import annotations

import sys

from lab.images.debian.recipe import debian_recipe_hash


def main(argv: list[str]) -> int:
    if argv:
        print(f"python -m lab.images.debian takes no arguments (got {' '.join(argv)}): it prints the recipe hash",
              file=sys.stderr)
        return 2
    print(debian_recipe_hash())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
