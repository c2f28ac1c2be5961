"""The servers as the tool sees them: how to start one, which files it reads, how to probe it.

What differs between the servers is in their entries of ``coldstart.server_kinds.SERVER_KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from coldstart.processes import Command, module_command
from coldstart.server_kinds import Models, Probe, ServerKind


@dataclass
class ServerTarget:
    """One server to measure: spawned by the tool (``kind.module``) or already running (``url``)."""

    kind: ServerKind
    config: Path | None = None
    port: int | None = None
    url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.kind.key

    @property
    def module(self) -> str:
        return self.kind.module

    @property
    def env_prefix(self) -> str:
        return self.kind.env_prefix

    def command(self) -> Command:
        return module_command(self.kind.module, self.config)


def model_files_by_model(target: ServerTarget) -> dict[str, list[Path]]:
    """Each configured model's weight files/directories (for eviction, bytes and MB/s)."""
    return target.kind.weights_by_model(target.config)


def model_files(target: ServerTarget) -> list[Path]:
    """The weight files/directories the target's configuration makes it read (for page-cache eviction)."""
    return list(dict.fromkeys(p for paths in model_files_by_model(target).values() for p in paths))


def size_of(paths: list[Path]) -> int:
    """Bytes of these files (directories: every file inside)."""
    from serving_core.read_ahead import files_in

    return sum(f.stat().st_size for f in files_in(paths))


def first_inference(client: httpx.Client, kind: ServerKind, models: Models) -> dict[str, float]:
    """Run the tiny first requests a user would send; return each one's latency. Raises on a non-200."""
    return _timed(client, kind.first_probes(models))


def first_request_per_model(client: httpx.Client, kind: ServerKind, models: Models) -> dict[str, float]:
    """Each ready model's first request, by name: a 1-token ``/generate``, a second of silence, or a
    small white image (what a user's first call costs, one-time setup included)."""
    probes: list[Probe] = []
    for name, m in models.items():
        if m.get("state") != "ready":
            continue
        request = kind.model_probe(name, m)
        if request is not None:
            probes.append((name, *request))
    return _timed(client, probes)


def _timed(client: httpx.Client, probes: list[Probe]) -> dict[str, float]:
    """Send each probe in turn; each one's latency. Raises on a non-200."""
    import time

    latencies: dict[str, float] = {}
    for name, route, kwargs in probes:
        t0 = time.perf_counter()
        r = client.post(route, **kwargs)
        if r.status_code != 200:
            raise RuntimeError(f"first {route} answered {r.status_code}: {r.text[:300]}")
        latencies[name] = time.perf_counter() - t0
    return latencies
