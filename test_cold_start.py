#!/usr/bin/env python3
"""Start the model servers from scratch and time their cold start. ``--help`` lists the options.

A thin entry point: the tool lives in the ``coldstart`` package, the servers it starts in
``coldstart/server_kinds.py``.
"""

from coldstart.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
