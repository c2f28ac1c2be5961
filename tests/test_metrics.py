"""/metrics on the shared core, in-process: the exposition parses and counts what happened."""

from __future__ import annotations

from inprocess_app import client
from prometheus_client.parser import text_string_to_metric_families


def scrape(c, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels)."""
    r = c.get("/metrics", headers=headers or {})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_requests_are_counted_by_route_model_and_status() -> None:
    with client() as c:
        for _ in range(3):
            assert c.post("/v1/echo", json={"model": "fake"}).status_code == 200
        assert c.post("/v1/echo", json={"model": "nope"}).status_code == 404
        m = scrape(c)
    ok = ("model_server_requests_total", (("model", "fake"), ("route", "/v1/echo"), ("status", "200")))
    assert m[ok] == 3
    # An unknown model is no model: the label stays empty, the status says what happened.
    assert m[("model_server_requests_total", (("model", ""), ("route", "/v1/echo"), ("status", "404")))] == 1
    assert m[("model_server_request_duration_seconds_count", (("route", "/v1/echo"),))] == 4


def test_model_state_load_and_queue_gauges() -> None:
    with client() as c:
        c.post("/v1/echo", json={})
        m = scrape(c)
    assert m[("model_server_model_state", (("model", "fake"), ("state", "ready")))] == 1
    assert m[("model_server_model_state", (("model", "fake"), ("state", "failed")))] == 0
    assert m[("model_server_model_load_attempts", (("model", "fake"),))] == 1
    assert m[("model_server_model_load_seconds", (("model", "fake"),))] >= 0
    assert m[("model_server_model_in_flight", (("model", "fake"),))] == 0
    assert m[("model_server_model_queue_depth", (("model", "fake"),))] == 0


def test_refused_requests_are_counted_and_metrics_scrapes_are_not() -> None:
    with client(api_key="k") as c:
        assert c.post("/v1/echo", json={}).status_code == 401
        m = scrape(c, {"X-API-Key": "k"})
    assert m[("model_server_requests_total", (("model", ""), ("route", "unmatched"), ("status", "401")))] == 1
    assert not any(labels and dict(labels).get("route") == "/metrics" for _, labels in m)


def test_two_apps_in_one_process_do_not_share_counters() -> None:
    with client() as a, client() as b:
        a.post("/v1/echo", json={})
        key = ("model_server_requests_total", (("model", "fake"), ("route", "/v1/echo"), ("status", "200")))
        assert scrape(a)[key] == 1
        assert key not in scrape(b)


class LoadedHandle:
    """A handle that reports its own load, as the GGUF engine does."""

    def __init__(self, running: int, waiting: int, kv_used: int, kv_cells: int) -> None:
        self._busy, self._kv = (running, waiting), (kv_used, kv_cells)

    def busy(self) -> tuple[int, int]:
        return self._busy

    def kv_cache_cells(self) -> tuple[int, int]:
        return self._kv


def test_server_wide_load_gauges_sum_the_models() -> None:
    """What a router or an autoscaler reads per pod: requests running and waiting over all models, and
    the KV cells in use over all cells (not the mean of the models' fractions)."""
    handles = {"a": LoadedHandle(2, 3, 100, 400), "b": LoadedHandle(1, 0, 300, 400)}
    # Different options: identical specs would be loaded once and share a handle.
    models = [{"name": n, "backend": "fake", "options": {"n": i}} for i, n in enumerate("ab")]
    with client(lambda spec: handles[spec.name], models=models) as c:
        m = scrape(c)
    assert m[("model_server_requests_running", ())] == 3
    assert m[("model_server_requests_waiting", ())] == 3
    assert m[("model_server_model_kv_cache_utilization", (("model", "a"),))] == 0.25
    assert m[("model_server_model_kv_cache_utilization", (("model", "b"),))] == 0.75
    assert m[("model_server_kv_cache_utilization", ())] == 0.5


def test_a_server_without_kv_caches_exports_no_kv_utilization() -> None:
    with client() as c:
        m = scrape(c)
    assert m[("model_server_requests_running", ())] == 0
    assert not any(name.endswith("kv_cache_utilization") for name, _ in m)
