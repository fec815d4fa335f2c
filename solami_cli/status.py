"""``solami status``: one line per part with its address and health."""

from __future__ import annotations

import argparse

from solami.client import check_health
from solami.redis_local import redacted, redis_reachable
from solami.registry import RELAY, SERVICES, redis_url


def relay_health(timeout_s: float) -> tuple[str, str]:
    """(address, status) of the relay's /healthz."""
    import os
    import urllib.error
    import urllib.request

    port = os.environ.get("SOLAMI_RELAY_HTTP_PORT", "8080")
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return url, "SERVING" if reply.status == 200 else "NOT_SERVING"
    except urllib.error.HTTPError:
        return url, "NOT_SERVING"
    except OSError:
        return url, "UNREACHABLE"


def collect(timeout_s: float) -> list[tuple[str, str, str]]:
    """(name, address, status) for Redis and every available service."""
    url = redis_url()
    status = "SERVING" if redis_reachable(url, timeout_s) else "UNREACHABLE"
    # Never the password of SOLAMI_REDIS_URL.
    rows = [("redis", redacted(url), status)]
    for info in SERVICES.values():
        if not info.is_available():
            continue
        address = info.address()
        rows.append((info.name, address, check_health(address, info.full_name, timeout_s)))
    if RELAY.is_available():
        rows.append(("relay", *relay_health(timeout_s)))
    return rows


def run(args: argparse.Namespace) -> int:
    rows = collect(args.timeout)
    for name, address, status in rows:
        print(f"{name:<7} {address:<28} {status}")
    return 0 if all(status == "SERVING" for _, _, status in rows) else 1
