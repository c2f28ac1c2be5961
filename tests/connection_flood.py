"""A connection flood, run as its own process: idle sockets and body tricklers, each reopened as
soon as the server closes it (what issue 17's attack did).

    python tests/connection_flood.py PORT --idle 1000 --tricklers 1000 --seconds 30

Idle sockets connect and send nothing. Tricklers send a complete ``POST`` head announcing a large
body, then one body byte every ``--trickle-every`` seconds. Prints ``ready`` once every socket was
opened once, and at the end one JSON line: connections opened, closed by the server, refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

HEAD = (b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\n\r\n")


class Stats:
    def __init__(self) -> None:
        self.opened = 0
        self.closed_by_server = 0
        self.refused = 0


async def _hold(port: int, trickle_every: float | None, stop: float, stats: Stats, first: asyncio.Event) -> None:
    """One attacker slot: connect, idle or trickle until the server closes, reconnect, until ``stop``."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats.refused += 1
            first.set()
            await asyncio.sleep(0.05)
            continue
        stats.opened += 1
        first.set()
        try:
            if trickle_every is not None:
                writer.write(HEAD)
            while time.monotonic() < stop:
                wait = trickle_every if trickle_every is not None else stop - time.monotonic()
                try:
                    data = await asyncio.wait_for(reader.read(65536), max(0.01, wait))
                except asyncio.TimeoutError:
                    if trickle_every is not None:
                        writer.write(b"{")
                        await writer.drain()
                    continue
                if not data:  # the server closed it (after a 408/503 or silently): open another
                    stats.closed_by_server += 1
                    break
        except OSError:
            stats.closed_by_server += 1
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--tricklers", type=int, default=1000)
    parser.add_argument("--trickle-every", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = Stats()
    stop = time.monotonic() + args.seconds
    slots = [(None if i < args.idle else args.trickle_every) for i in range(args.idle + args.tricklers)]
    firsts = [asyncio.Event() for _ in slots]
    tasks = []
    for every, first in zip(slots, firsts, strict=True):
        tasks.append(asyncio.create_task(_hold(args.port, every, stop, stats, first)))
        await asyncio.sleep(0)  # let the connects interleave
    await asyncio.gather(*(f.wait() for f in firsts))
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({"opened": stats.opened, "closed_by_server": stats.closed_by_server,
                      "refused": stats.refused}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
