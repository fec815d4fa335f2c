"""`python -m bench [part ...]`: run the benchmarks of the parts given (default: all)."""

from __future__ import annotations

import importlib
import sys

PARTS = ("asr",)


def main(argv: list[str]) -> int:
    for part in argv or PARTS:
        if part not in PARTS:
            print(f"unknown benchmark {part!r}; known: {', '.join(PARTS)}", file=sys.stderr)
            return 2
        importlib.import_module(f"bench.{part}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
