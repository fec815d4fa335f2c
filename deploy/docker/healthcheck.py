#!/usr/bin/env python3
"""Container health check: is the part this container runs ready to serve?

The part comes from the first argument, else from the container's main command
(``solami serve <part>``, read from /proc/1/cmdline). A gRPC service must answer the standard
health protocol with SERVING for its full name (so a service still loading its model is not
healthy yet); the relay must answer ``GET /healthz`` with 200. Ports follow the same
``SOLAMI_<PART>_PORT`` / ``SOLAMI_RELAY_HTTP_PORT`` variables as the services themselves.

Exit status 0 = healthy, 1 = not healthy, 2 = cannot tell which part to check (Docker's
HEALTHCHECK contract treats any non-zero status as unhealthy).
"""

from __future__ import annotations

import itertools
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

# Seconds one check may take (Docker's HEALTHCHECK --timeout is larger).
CHECK_TIMEOUT_S = 3.0
# The relay's HTTP port when SOLAMI_RELAY_HTTP_PORT is not set.
RELAY_HTTP_PORT = 8080
MAIN_CMDLINE = Path("/proc/1/cmdline")


def part_from_cmdline(cmdline: Path = MAIN_CMDLINE) -> str | None:
    """The part named after ``serve`` in a NUL-separated command line, or None."""
    try:
        words = cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for word, following in itertools.pairwise(words):
        if word == "serve" and following:
            return following
    return None


def check_relay(environ: Mapping[str, str]) -> tuple[bool, str]:
    port = environ.get("SOLAMI_RELAY_HTTP_PORT") or str(RELAY_HTTP_PORT)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=CHECK_TIMEOUT_S) as reply:
            return reply.status == 200, f"relay {url}: HTTP {reply.status}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"relay {url}: {exc}"


def check_service(part: str, environ: Mapping[str, str]) -> tuple[bool, str]:
    from solami.client import check_health
    from solami.registry import SERVICES

    info = SERVICES[part]
    port = environ.get(f"{info.env_prefix}PORT") or str(info.port)
    address = f"127.0.0.1:{port}"
    status = check_health(address, info.full_name, CHECK_TIMEOUT_S)
    return status == "SERVING", f"{part} {address}: {status}"


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    env = os.environ if environ is None else environ
    part = args[0] if args else part_from_cmdline()
    from solami.registry import SERVICES

    if part == "relay":
        healthy, message = check_relay(env)
    elif part in SERVICES:
        healthy, message = check_service(part, env)
    else:
        names = ", ".join(["relay", *SERVICES])
        print(f"healthcheck: no part to check (got {part!r}); pass one of {names}", file=sys.stderr)
        return 2
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
