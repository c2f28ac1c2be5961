"""Container health probe: exit 0 when the server in this container answers ``/health/ready`` 200.

``python -m serving_core.probe VAR [VAR ...] DEFAULT_PORT``: the port is the first of the
environment variables ``VAR`` that is set (the same variables the server reads its port from),
else ``DEFAULT_PORT``. So ``docker run -e MODEL_SERVER_PORT=9001`` moves the server and its probe
together. Standard library only: it runs every few seconds and must cost nothing.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_port(variables: list[str], default: int) -> int:
    """The first set variable's value as a port, else ``default``."""
    for name in variables:
        value = os.environ.get(name, "").strip()
        if value and value != "0":
            return int(value)
    return default


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: python -m serving_core.probe [PORT_VAR ...] DEFAULT_PORT", file=sys.stderr)
        return 2
    port = probe_port(argv[:-1], int(argv[-1]))
    # No proxy: Docker hands the client's proxy settings to containers as http_proxy, and a probe
    # of 127.0.0.1 sent through a proxy would report the container unhealthy forever.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/health/ready", timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready on port {port}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
