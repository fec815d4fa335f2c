"""`python -m bench [part ...]`: run the benchmarks of the parts given (default: all).

Each part is a module ``bench/<part>.py`` with a ``main()``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

PARTS = tuple(
    sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name != "common")
)


def main(argv: list[str]) -> int:
    for part in argv or PARTS:
        if part not in PARTS:
            print(f"unknown benchmark {part!r}; known: {', '.join(PARTS)}", file=sys.stderr)
            return 2
        importlib.import_module(f"bench.{part}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
