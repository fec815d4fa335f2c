"""``--rig-data DIR`` of ``solami serve relay`` and ``solami up``: the relay's rig data directory.

The relay reads the directory from ``SOLAMI_RELAY_RIG_DATA``, else ``SOLAMI_RIG_DATA`` (see
``relay/settings.py``); the option sets ``SOLAMI_RIG_DATA`` for the relay and drops
``SOLAMI_RELAY_RIG_DATA``, so the command line wins over both.
"""

from __future__ import annotations

import argparse
from collections.abc import MutableMapping
from pathlib import Path

# Shared variable the relay falls back to for its rig data directory.
RIG_DATA_VAR = "SOLAMI_RIG_DATA"
# The relay's own variable, which would take precedence over RIG_DATA_VAR.
RELAY_RIG_DATA_VAR = "SOLAMI_RELAY_RIG_DATA"


def existing_dir(value: str) -> Path:
    """argparse ``type``: an existing directory (a bad one exits 2 with argparse's usage)."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {value}")
    return path


def add_argument(parser: argparse.ArgumentParser, relay_only: bool = False) -> None:
    """Adds ``--rig-data DIR`` to ``parser``."""
    parser.add_argument(
        "--rig-data",
        type=existing_dir,
        metavar="DIR",
        help=("relay only: " if relay_only else "")
        + f"the relay's directory with bone_data/ and retargetmap/ (sets {RIG_DATA_VAR})",
    )


def set_rig_data(environ: MutableMapping[str, str], rig_data: Path) -> None:
    """Makes ``rig_data`` the rig data directory of a relay started with ``environ``."""
    environ.pop(RELAY_RIG_DATA_VAR, None)
    environ[RIG_DATA_VAR] = str(rig_data.resolve())
