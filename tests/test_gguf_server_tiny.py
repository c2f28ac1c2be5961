"""The GGUF server with several tiny models the tests build, plus broken ones: routes and bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import assert_error


def test_health_reports_each_model_and_failures_with_reasons(tiny_server) -> None:
    r = tiny_server.client.get("/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "degraded"
    models = body["models"]
    for name in ("tiny-a", "tiny-b", "tiny-c"):
        assert models[name]["state"] == "ready"
        assert models[name]["load_seconds"] > 0
        assert models[name]["weights_resident"] == 1.0  # llama.cpp populates its mapping while loading
    assert models["missing"]["state"] == "failed" and models["missing"]["weights_resident"] is None
    assert "not found" in models["missing"]["error"] and "does-not-exist.gguf" in models["missing"]["error"]
    assert models["missing"]["attempts"] == 1  # a missing file is not retried
    assert models["corrupt"]["state"] == "failed" and models["corrupt"]["attempts"] == 2
    assert models["truncated"]["state"] == "failed"
    # llama.cpp's own reason is part of the error, not only "Failed to load model from file".
    assert "corrupted or incomplete" in models["truncated"]["error"]
    assert "failed to read header" in models["corrupt"]["error"]
    assert "bad magic" in models["not-gguf"]["error"]
    assert "not serving" in body["message"]


def test_ready_is_503_while_any_model_failed(tiny_server) -> None:
    assert tiny_server.client.get("/health/ready").status_code == 503
    assert tiny_server.client.get("/health/live").status_code == 200


def test_loader_logs_parallel_loading_and_load_times(tiny_server) -> None:
    log = tiny_server.log()
    assert "PERFORMANCE: Using parallel model loading" in log
    assert log.count("Loading time:") >= 8  # one per loaded model (7: one alias shares) and one total
    assert "Total Loading time:" in log


def test_models_route_lists_every_model(tiny_server) -> None:
    body = tiny_server.client.get("/models").json()
    assert body["default"] == "tiny-a"
    states = {m["name"]: m["state"] for m in body["models"]}
    assert states["tiny-b"] == "ready" and states["missing"] == "failed"


def test_generate_defaults_to_first_model(tiny_server) -> None:
    r = tiny_server.client.post("/generate", json={"prompt": "the capital of", "max_tokens": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-a"
    assert body["usage"]["completion_tokens"] >= 1 and body["usage"]["prompt_tokens"] >= 2
    assert body["finish_reason"] in ("length", "stop")
    assert body["timings"]["generation_seconds"] > 0


def test_generate_same_seed_same_text(tiny_server) -> None:
    req = {"model": "tiny-b", "prompt": "the", "max_tokens": 12, "temperature": 1.0, "seed": 7}
    a = tiny_server.client.post("/generate", json=req).json()["text"]
    b = tiny_server.client.post("/generate", json=req).json()["text"]
    assert a == b


def test_inference_seed_route(tiny_server) -> None:
    r = tiny_server.client.post("/inference", json={"model_name": "tiny-c", "prompt": "a", "max_tokens": 4})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"result"} and isinstance(r.json()["result"], str)


def test_generate_stream_sends_events_then_done(tiny_server) -> None:
    req = {"model": "tiny-a", "prompt": "the", "max_tokens": 10, "temperature": 0, "cache_prompt": False}
    with tiny_server.client.stream("POST", "/generate", json={**req, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        datas = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    events = [json.loads(d) for d in datas[:-1]]
    final = events[-1]
    whole = tiny_server.client.post("/generate", json=req).json()
    # Streamed and non-streamed answers agree, and usage counts tokens sampled, not events sent (a
    # character split across tokens is sent once, whole).
    assert "".join(e["text"] for e in events) == whole["text"]
    assert final["finish_reason"] == whole["finish_reason"]
    assert final["usage"] == whole["usage"]
    if final["finish_reason"] == "length":
        assert final["usage"]["completion_tokens"] == 10
    assert final["timings"]["prompt_seconds"] > 0
    assert all(e["model"] == "tiny-a" for e in events)


# --- bad input ----------------------------------------------------------------------------------




def test_unknown_model_is_404_listing_available(tiny_server) -> None:
    msg = assert_error(tiny_server.client.post("/generate", json={"model": "nope", "prompt": "x"}), 404)
    assert "tiny-a" in msg and "tiny-b" in msg and "nope" in msg


def test_failed_model_is_503_with_reason(tiny_server) -> None:
    msg = assert_error(tiny_server.client.post("/generate", json={"model": "missing", "prompt": "x"}), 503)
    assert "not found" in msg


def test_prompt_longer_than_context_is_400_with_limits(tiny_server) -> None:
    r = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "the " * 400, "max_tokens": 4})
    msg = assert_error(r, 400)
    assert "256" in msg and "context" in msg


def test_prompt_plus_max_tokens_over_context_is_400(tiny_server) -> None:
    msg = assert_error(tiny_server.client.post("/generate", json={"prompt": "the", "max_tokens": 1000}), 400)
    assert "max_tokens" in msg and "256" in msg


def test_streaming_overflow_is_400_before_the_stream(tiny_server) -> None:
    r = tiny_server.client.post("/generate", json={"prompt": "the " * 400, "stream": True})
    assert_error(r, 400)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": "x", "temperature": 5}, "temperature"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "max_tokens": -3}, "max_tokens"),
        ({"prompt": ""}, "prompt"),
        ({"max_tokens": 3}, "prompt"),
        ({"prompt": 12}, "prompt"),
        ({"prompt": "x", "stop": [""]}, "stop"),
        ({"prompt": "x", "seed": -1}, "seed"),
        ({"prompt": "x", "repeat_penalty": 0}, "repeat_penalty"),  # llama.cpp would divide by it
    ],
)
def test_out_of_range_parameters_are_422_naming_the_field(tiny_server, body, field) -> None:
    assert field in assert_error(tiny_server.client.post("/generate", json=body), 422)


def test_malformed_json_is_422(tiny_server) -> None:
    r = tiny_server.client.post("/generate", content=b'{"prompt": "x",', headers={"content-type": "application/json"})
    assert "JSON" in assert_error(r, 422) or "json" in r.text


def test_wrong_method_and_unknown_route(tiny_server) -> None:
    assert_error(tiny_server.client.get("/generate"), 405)
    assert_error(tiny_server.client.get("/nothing-here"), 404)


def test_concurrent_burst_across_models_has_no_5xx(tiny_server) -> None:
    names = ["tiny-a", "tiny-b", "tiny-c"]

    def one(i: int) -> int:
        route, body = ("/generate", {"model": names[i % 3], "prompt": "the", "max_tokens": 16})
        if i % 4 == 1:
            route, body = "/v1/completions", {"model": names[i % 3], "prompt": "a", "max_tokens": 8}
        with httpx.Client(base_url=tiny_server.url, timeout=120) as c:
            return c.post(route, json=body).status_code

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(one, range(48)))
    assert codes.count(200) == 48, codes
    assert tiny_server.client.get("/health").json()["models"]["tiny-a"]["state"] == "ready"


def test_a_burst_of_streams_is_refused_before_the_200_never_inside_it(tiny_server) -> None:
    # 100 streams at once on one model (4 sequences + 32 waiting): the rest must get 429 before any
    # response starts, and every stream that got its 200 must end normally, not with an error event.
    def one(_: int) -> tuple[int, list[str]]:
        with httpx.Client(base_url=tiny_server.url, timeout=120) as c, \
                c.stream("POST", "/v1/completions", json={"model": "tiny-b", "prompt": "the", "max_tokens": 24,
                                                          "stream": True}) as r:
            return r.status_code, [line for line in r.iter_lines() if line.startswith("data: ")]

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    codes = [code for code, _ in results]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 36, codes  # at least every sequence and queue place was used
    for code, lines in results:
        if code == 200:
            assert lines[-1] == "data: [DONE]"
            assert not any('"error"' in line for line in lines), lines
            assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] in ("length", "stop")


def test_server_still_serves_after_all_the_bad_input(tiny_server) -> None:
    r = tiny_server.client.post("/generate", json={"model": "tiny-c", "prompt": "the", "max_tokens": 3})
    assert r.status_code == 200


def test_openapi_schema_documents_the_routes(tiny_server) -> None:
    paths = tiny_server.client.get("/openapi.json").json()["paths"]
    for p in ("/generate", "/inference", "/v1/completions", "/v1/chat/completions", "/v1/models", "/health"):
        assert p in paths




def test_same_file_and_options_under_two_names_is_loaded_once(tiny_server) -> None:
    models = tiny_server.client.get("/health").json()["models"]
    assert models["tiny-a-alias"]["shares_with"] == "tiny-a" and models["tiny-a-alias"]["state"] == "ready"
    r = tiny_server.client.post("/generate", json={"model": "tiny-a-alias", "prompt": "the", "max_tokens": 3})
    assert r.status_code == 200 and r.json()["model"] == "tiny-a-alias"


def test_request_body_over_the_limit_is_413(tiny_server) -> None:
    huge = "the " * (3 * 1024 * 1024)  # 12 MiB of JSON, above the GGUF server's 8 MiB default
    msg = assert_error(tiny_server.client.post("/generate", json={"prompt": huge}), 413)
    assert "limit" in msg
    assert tiny_server.client.get("/health/live").status_code == 200


def test_metrics_count_generated_tokens_and_requests(tiny_server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def sample(name: str, **labels: str) -> float:
        text = tiny_server.client.get("/metrics").text
        return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                     if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())), 0.0)

    before = sample("gguf_generated_tokens_total", model="tiny-c")
    requests_before = sample("gguf_requests_total", model="tiny-c", route="/generate", status="200")
    r = tiny_server.client.post("/generate", json={"model": "tiny-c", "prompt": "the", "max_tokens": 7,
                                                   "temperature": 0})
    assert r.status_code == 200
    assert sample("gguf_generated_tokens_total", model="tiny-c") - before == r.json()["usage"]["completion_tokens"]
    assert sample("gguf_requests_total", model="tiny-c", route="/generate", status="200") == requests_before + 1
    assert sample("gguf_model_state", model="missing", state="failed") == 1
    assert sample("gguf_model_in_flight", model="tiny-c") == 0


def test_content_parts_other_than_text_are_400_not_supported(tiny_server) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    r = tiny_server.client.post("/v1/chat/completions", json={"model": "tiny-a", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}]})
    assert "not supported: image input" in assert_error(r, 400)
    assert r.json()["error"]["param"] == "messages.0.content"


def test_n_choices_on_both_openai_families(tiny_server) -> None:
    for route, body in (("/v1/completions", {"prompt": "the"}),
                        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})):
        r = tiny_server.client.post(route, json={"model": "tiny-a", "n": 2, "max_tokens": 3, **body})
        assert r.status_code == 200 and [c["index"] for c in r.json()["choices"]] == [0, 1]


def test_unknown_routes_get_the_error_shape_and_a_pointer_to_the_docs(tiny_server) -> None:
    r = tiny_server.client.post("/v1/assistants", json={})
    message = assert_error(r, 404)
    assert "POST /v1/assistants" in message and "/docs" in message
    assert "/docs" in assert_error(tiny_server.client.delete("/generate"), 405)


def test_ignored_openai_parameters_are_named_in_a_header(tiny_server) -> None:
    r = tiny_server.client.post("/v1/completions", json={"model": "tiny-a", "prompt": "the", "max_tokens": 1,
                                                         "foo": 1, "user": "u1"})
    assert r.status_code == 200 and r.headers["X-Ignored-Parameters"] == "foo, user", r.headers
    r = tiny_server.client.post("/v1/completions", json={"model": "tiny-a", "prompt": "the", "max_tokens": 1})
    assert "X-Ignored-Parameters" not in r.headers
