#!/usr/bin/env python3
"""Start both model servers from scratch and time their cold start. ``--help`` lists the options.

A thin entry point: the tool lives in the ``coldstart`` package.
"""

from coldstart.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
