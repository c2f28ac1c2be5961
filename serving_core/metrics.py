"""Prometheus metrics (``GET /metrics``) and the per-request access log, for both servers.

Each app has its own ``CollectorRegistry`` (no process-global metric state: two apps in one test
process do not share counters). Model state, load times, queue depth and in-flight counts are
read from the model registry at scrape time; request counts and latencies are recorded by
``RequestMetrics``, an ASGI middleware that also writes the access-log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving_core import request_context
from serving_core.connections import ConnectionBook
from serving_core.registry import ModelRegistry, ModelState

access_log = logging.getLogger("serving_core.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@runtime_checkable
class ReportsBusy(Protocol):
    """A loaded handle that knows its own load (the GGUF engine: sequences running and waiting)."""

    def busy(self) -> tuple[int, int]:
        """(requests in flight, requests waiting)."""
        ...


@runtime_checkable
class ReportsKvCache(Protocol):
    """A loaded handle with a KV cache (the GGUF engine)."""

    def kv_cache_cells(self) -> tuple[int, int]:
        """(cells held by the sequences serving requests, all cells)."""
        ...


class ServerMetrics:
    """The metrics of one server app."""

    def __init__(self, registry: ModelRegistry[Any], prefix: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.prefix = prefix
        self.requests = Counter(f"{prefix}_requests", "HTTP requests by route, model and status",
                                ["route", "model", "status"], registry=self.registry)
        self.latency = Histogram(f"{prefix}_request_duration_seconds", "HTTP request latency, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_ModelCollector(registry, prefix))
        self.extra: dict[str, Any] = {}

    def counter(self, name: str, doc: str, labels: list[str]) -> Counter:
        """A server-specific counter (tokens generated, audio seconds …), created once."""
        if name not in self.extra:
            self.extra[name] = Counter(f"{self.prefix}_{name}", doc, labels, registry=self.registry)
        counter: Counter = self.extra[name]
        return counter

    def histogram(self, name: str, doc: str, labels: list[str], buckets: tuple[float, ...]) -> Histogram:
        if name not in self.extra:
            self.extra[name] = Histogram(f"{self.prefix}_{name}", doc, labels, buckets=buckets,
                                         registry=self.registry)
        histogram: Histogram = self.extra[name]
        return histogram

    def watch_connections(self, book: ConnectionBook) -> None:
        """Expose the HTTP server's connections (open by phase; closed or refused by the server)."""
        self.registry.register(_ConnectionCollector(book, self.prefix))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ModelCollector(Collector):
    """Per-model gauges read from the model registry when Prometheus scrapes."""

    def __init__(self, registry: ModelRegistry[Any], prefix: str) -> None:
        self._registry = registry
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        state = GaugeMetricFamily(f"{p}_model_state", "1 for the model's current state", labels=["model", "state"])
        load = GaugeMetricFamily(f"{p}_model_load_seconds", "how long the last load took", labels=["model"])
        attempts = GaugeMetricFamily(f"{p}_model_load_attempts", "load attempts so far", labels=["model"])
        in_flight = GaugeMetricFamily(f"{p}_model_in_flight", "requests being served", labels=["model"])
        waiting = GaugeMetricFamily(f"{p}_model_queue_depth", "requests waiting for the model", labels=["model"])
        kv = GaugeMetricFamily(f"{p}_model_kv_cache_utilization",
                               "KV-cache cells held by running requests ÷ all cells (0-1)", labels=["model"])
        total_running = total_waiting = kv_used = kv_cells = 0
        for name, model in self._registry.models.items():
            for s in ModelState:
                state.add_metric([name, s.value], 1.0 if model.state is s else 0.0)
            if model.load_seconds is not None:
                load.add_metric([name], model.load_seconds)
            attempts.add_metric([name], model.attempts)
            running, queued = _busy(model)
            in_flight.add_metric([name], running)
            waiting.add_metric([name], queued)
            total_running += running
            total_waiting += queued
            if isinstance(model.handle, ReportsKvCache):
                used, cells = model.handle.kv_cache_cells()
                kv.add_metric([name], used / cells if cells else 0.0)
                kv_used, kv_cells = kv_used + used, kv_cells + cells
        yield from (state, load, attempts, in_flight, waiting, kv)
        # Server-wide, unlabelled: what a router or an autoscaler reads per pod (the Gateway API
        # Inference Extension's model-server protocol; docs/OPERATIONS.md, "Scaling out").
        running_total = GaugeMetricFamily(f"{p}_requests_running", "requests being served, all models")
        running_total.add_metric([], total_running)
        waiting_total = GaugeMetricFamily(f"{p}_requests_waiting", "requests waiting for a model, all models")
        waiting_total.add_metric([], total_waiting)
        yield from (running_total, waiting_total)
        if kv_cells:
            kv_total = GaugeMetricFamily(f"{p}_kv_cache_utilization",
                                         "KV-cache cells held by running requests ÷ all cells, all models (0-1)")
            kv_total.add_metric([], kv_used / kv_cells)
            yield kv_total


class _ConnectionCollector(Collector):
    """The connection book read when Prometheus scrapes: what no request counter can see (a
    connection closed before it sent a request, a request refused before the application ran)."""

    def __init__(self, book: ConnectionBook, prefix: str) -> None:
        self._book = book
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        open_ = GaugeMetricFamily(f"{p}_connections_open", "open HTTP connections, by phase", labels=["phase"])
        for phase, n in self._book.snapshot().items():
            open_.add_metric([phase], n)
        accepted = CounterMetricFamily(f"{p}_connections_accepted", "HTTP connections accepted")
        accepted.add_metric([], self._book.accepted)
        closed = CounterMetricFamily(
            f"{p}_connections_closed_by_server",
            "HTTP connections the server closed, or requests it refused, by reason (header_timeout, body_timeout, "
            "dropped_* to make room, over_limit, header_too_large, invalid_http, keep_alive_expired)",
            labels=["reason"])
        for reason, n in sorted(self._book.closed.items()):
            closed.add_metric([reason], n)
        yield from (open_, accepted, closed)


def _busy(model: Any) -> tuple[int, int]:
    handle = model.handle
    if isinstance(handle, ReportsBusy):
        return handle.busy()
    guard = model.guard
    return guard.threads_inside, guard.waiting


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by route template, model and status, and
    write one access-log line for it."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]
        notes, token = request_context.begin()

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if notes.load_wait_seconds:  # the request waited for an on-demand model load
                    message["headers"] = [*message.get("headers", []), (b"x-model-load-wait-seconds",
                                                                       f"{notes.load_wait_seconds:.3f}".encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            request_context.end(token)
            seconds = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            model = notes.models[-1] if notes.models else ""
            if route != "/metrics":
                self.metrics.requests.labels(route, model, str(status[0])).inc()
                self.metrics.latency.labels(route).observe(seconds)
            access_log.info("%s %s model=%s status=%d %.3fs", scope.get("method"), scope.get("path"), model or "-",
                            status[0], seconds)
