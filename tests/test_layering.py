"""The shared runtime sits below everything else: importing any module of ``solami`` never
imports the relay, a service or the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "solami"
# Packages built on the runtime; none of them may be loaded by it.
ABOVE_THE_RUNTIME = ("relay", "services", "solami_cli")

# Imports the given modules in one fresh interpreter and reports which modules of the packages
# above the runtime got loaded.
_IMPORT_ALL = """
import importlib, json, sys

for name in MODULES:
    importlib.import_module(name)
above = sorted(m for m in sys.modules if m.partition(".")[0] in ABOVE)
print(json.dumps(above))
"""


def _runtime_modules() -> list[str]:
    """Every module of the runtime, read from its files (so a package without ``__init__.py``
    counts too), the generated ``solami.v1`` included."""
    names = set()
    for path in RUNTIME.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "__pycache__" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return sorted(names)


def test_the_runtime_imports_nothing_above_it():
    modules = _runtime_modules()
    assert {"solami", "solami.server", "solami.registry", "solami.client"} <= set(modules)
    script = f"MODULES = {modules!r}\nABOVE = {ABOVE_THE_RUNTIME!r}\n{_IMPORT_ALL}"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    above = json.loads(result.stdout.splitlines()[-1])
    assert above == [], f"importing the runtime loads {above}"
