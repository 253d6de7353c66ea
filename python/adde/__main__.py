"""`python -m adde ...` runs the bundled binary, signals and exit code passing through."""

import os
import sys

from ._find import find_adde_bin


def main() -> None:
    adde = find_adde_bin()
    os.execv(adde, [adde, *sys.argv[1:]])


if __name__ == "__main__":
    main()
