#!/usr/bin/env python3
"""Container health check for Prompt2Pic: ``p2p-healthcheck [PATH]``.

GETs ``http://127.0.0.1:$HTTP_PORT/PATH`` (PATH defaults to ``/healthz``, the liveness endpoint;
``/readyz`` is readiness) and exits 0 on a 2xx answer, 1 otherwise. Standard library only, so the
images need neither curl nor wget. Proxy variables are ignored: the check must hit this container.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# Must equal the default of Settings.http_port (config/settings.py); tests/test_compose.py checks it.
DEFAULT_PORT = 8080
DEFAULT_PATH = "/healthz"
TIMEOUT_S = 4.0


def health_url(path: str = DEFAULT_PATH) -> str:
    host = os.environ.get("HTTP_HOST", "").strip()
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"  # the app listens on every interface: ask on loopback
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    port = int(os.environ.get("HTTP_PORT") or DEFAULT_PORT)
    if not path.startswith("/"):
        path = "/" + path
    return f"http://{host}:{port}{path}"


def main(argv: list[str]) -> int:
    url = health_url(argv[1] if len(argv) > 1 else DEFAULT_PATH)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} answered {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {url} answered {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
