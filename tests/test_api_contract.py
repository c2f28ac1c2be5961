"""What a client gets for fields the server does or does not support, on a real GGUF server with
tiny models: unknown fields are named, unsupported OpenAI parameters refused, llama.cpp's extra
samplers honoured, errors carry OpenAI's `param`, and the index and model list say what serves."""

from __future__ import annotations

import pytest

from conftest import TINY_OPTS, assert_error, start_configured


@pytest.fixture(scope="module")
def server(module_server, model_files, tmp_path_factory):
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-a", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS},
        {"name": "missing", "backend": "llama_cpp", "path": "does-not-exist.gguf"},
    ])


def test_unknown_native_fields_are_named_with_a_suggestion(server) -> None:
    r = server.client.post("/generate", json={"prompt": "a", "max_new_tokens": 5})  # TGI's name
    message = assert_error(r, 422)
    assert "max_new_tokens: unknown field (did you mean 'max_tokens'?)" in message
    assert r.json()["error"]["param"] == "max_new_tokens"
    assert_error(server.client.post("/inference", json={"prompt": "a", "top_q": 1}), 422)


def test_top_k_1_samples_the_greedy_text(server) -> None:
    base = {"model": "tiny-a", "prompt": "the", "max_tokens": 12, "seed": 3}
    greedy = server.client.post("/generate", json={**base, "temperature": 0}).json()["text"]
    top1 = server.client.post("/generate", json={**base, "temperature": 1.5, "top_k": 1}).json()["text"]
    assert top1 == greedy
    r = server.client.post("/v1/completions", json={**base, "temperature": 1.5, "top_k": 1, "min_p": 0.1,
                                                     "repeat_penalty": 1.0})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == greedy
    assert_error(server.client.post("/generate", json={**base, "top_k": -1}), 422)


@pytest.mark.parametrize(("route", "extra", "param"), [
    ("/v1/completions", {"logit_bias": {"1": 5}}, "logit_bias"),
    ("/v1/completions", {"echo": True}, "echo"),
    ("/v1/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("/v1/chat/completions", {"functions": [{"name": "f"}]}, "functions"),
])
def test_openai_parameters_that_would_change_the_result_get_400(server, route, extra, param) -> None:
    body = {"model": "tiny-a", "max_tokens": 2, **extra}
    body.update({"prompt": "a"} if route.endswith("/completions") and "chat" not in route
                else {"messages": [{"role": "user", "content": "hi"}]})
    r = server.client.post(route, json=body)
    message = assert_error(r, 400)
    assert message.startswith(f"not supported: {param}") and r.json()["error"]["param"] == param


def test_neutral_and_harmless_openai_parameters_are_accepted(server) -> None:
    r = server.client.post("/v1/chat/completions", json={
        "model": "tiny-a", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}],
        "logprobs": False, "response_format": {"type": "text"}, "tool_choice": "none", "user": "u-1",
        "metadata": {"k": "v"}})
    assert r.status_code == 200, r.text
    assert r.headers["X-Ignored-Parameters"] == "metadata, user"  # the client is told, not only the log


def test_malformed_json_says_what_and_where_in_words(server) -> None:
    r = server.client.post("/generate", content=b'{"prompt": "a",\n "max_tokens": }',
                           headers={"content-type": "application/json"})
    message = assert_error(r, 422)
    assert message == "the body is not valid JSON: Expecting value at line 2, column 16"


def test_errors_carry_the_parameter_at_fault(server) -> None:
    r = server.client.post("/v1/completions", json={"model": "tiny-a", "prompt": "a", "temperature": 5})
    assert_error(r, 422)
    assert r.json()["error"]["param"] == "temperature"
    r = server.client.post("/generate", json={"model": "nope", "prompt": "a"})
    assert_error(r, 404)
    assert r.json()["error"]["param"] is None


def test_v1_models_marks_what_cannot_serve(server) -> None:
    data = server.client.get("/v1/models").json()["data"]
    assert [(m["id"], m["state"]) for m in data] == [("tiny-a", "ready"), ("missing", "failed")]
    assert "not found" in data[1]["error"] and data[0]["error"] is None


def test_index_points_to_docs_and_health(server) -> None:
    r = server.client.get("/")
    assert r.status_code == 200
    body = r.json()
    assert body["docs"] == "/docs" and body["health"] == "/health"
    assert server.client.get(body["docs"]).status_code == 200
