"""The layers stay apart: importing any module of the shared runtime ``solami`` never imports
the relay, a service or the command line; importing any module of the relay never imports a
service or torch (the relay knows the services only through the gRPC contract)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "solami"
RELAY = ROOT / "relay"
# Packages built on the runtime; none of them may be loaded by it.
ABOVE_THE_RUNTIME = ("relay", "services", "solami_cli")
# What the relay may never load: service code, the command line above it, and torch (its image
# has none).
OUTSIDE_THE_RELAY = ("services", "solami_cli", "torch")

# Imports the given modules in one fresh interpreter and reports which modules of the packages
# above the runtime got loaded.
_IMPORT_ALL = """
import importlib, json, sys

for name in MODULES:
    importlib.import_module(name)
above = sorted(m for m in sys.modules if m.partition(".")[0] in ABOVE)
print(json.dumps(above))
"""


def _modules(package: Path) -> list[str]:
    """Every module of a package, read from its files (so a package without ``__init__.py``
    counts too), generated code included."""
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "__pycache__" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return sorted(names)


def _loaded(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules of ``forbidden`` packages that importing ``modules`` loads."""
    script = f"MODULES = {modules!r}\nABOVE = {forbidden!r}\n{_IMPORT_ALL}"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_runtime_imports_nothing_above_it():
    modules = _modules(RUNTIME)
    assert {"solami", "solami.server", "solami.registry", "solami.avatar.skeleton"} <= set(modules)
    above = _loaded(modules, ABOVE_THE_RUNTIME)
    assert above == [], f"importing the runtime loads {above}"


def test_the_relay_imports_no_service_code_and_no_torch():
    modules = _modules(RELAY)
    assert {"relay.server", "relay.compat", "relay.turns", "relay.clients"} <= set(modules)
    outside = _loaded(modules, OUTSIDE_THE_RELAY)
    assert outside == [], f"importing the relay loads {outside}"
