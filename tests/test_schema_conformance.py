"""The servers never contradict their own OpenAPI schemas (issue 17, section 5): schemathesis sends
schema-valid (and invalid) requests to both real servers; a schema-valid request must never be
refused as invalid (422), and nothing may be a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest
from gguf_model_server.api.completion.protocol import CompletionRequest
from gguf_model_server.api.native.protocol import GenerateRequest, InferenceRequest

from conftest import TINY_OPTS, start_configured

# What a schema-valid request may still get, for reasons no schema states: 400 (prompt + max_tokens
# over the context window, an OpenAI parameter that is not supported), 404 (a model name that is not
# configured), 415 (an upload whose bytes are no audio or image), 429 (the model is busy).
GGUF_STATUSES = ["2XX", "400", "404", "429"]
ASR_OCR_STATUSES = ["2XX", "400", "404", "415", "429"]


def run_schemathesis(url: str, expected: list[str], max_examples: int) -> tuple[int, list[str]]:
    """Every phase but the stateful one, as ``schemathesis run`` does; returns (requests, failures)."""
    import schemathesis
    from schemathesis.engine import Status, events, from_schema

    config = schemathesis.Config.from_dict({
        "seed": 17,  # the same requests on every run
        "generation": {"max-examples": max_examples, "database": "none", "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False,
                   "not_a_server_error": {"enabled": True},
                   "positive_data_acceptance": {"enabled": True, "expected-statuses": expected}},
        "request-timeout": 60,
    })
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    requests, failures = 0, []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            requests += len(event.recorder.interactions)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        info = check.failure_info
                        failures.append(f"{event.recorder.label}: {info.failure.title}: "
                                        f"{info.failure.message[:300]}\n{info.code_sample[:1500]}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis error: {getattr(event, 'info', event)}")
    return requests, sorted(set(failures))


@pytest.fixture(scope="module")
def gguf_server(module_server, model_files, tmp_path_factory):
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-a", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS}])


@pytest.mark.slow  # ~10 s: 500+ generated requests
def test_the_gguf_server_never_contradicts_its_schema(gguf_server) -> None:
    requests, failures = run_schemathesis(gguf_server.url, GGUF_STATUSES, max_examples=25)
    assert requests > 500  # every operation was exercised
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_the_asr_ocr_server_never_contradicts_its_schema(module_server) -> None:
    srv = module_server("asr_ocr_model_server")
    srv.wait_settled(timeout=180)
    requests, failures = run_schemathesis(srv.url, ASR_OCR_STATUSES, max_examples=15)
    assert requests > 150
    assert not failures, "\n\n".join(failures)


def _prop(model: Any, name: str) -> dict[str, Any]:
    return dict(model.model_json_schema(mode="validation")["properties"][name])


def test_the_schema_states_the_limits_the_server_enforces() -> None:
    for model in (GenerateRequest, InferenceRequest, CompletionRequest, ChatCompletionRequest):
        string, array, _ = _prop(model, "stop")["anyOf"]
        assert (string["minLength"], string["maxLength"]) == (1, 256)
        assert array["maxItems"] == 16 and array["items"]["minLength"] == 1
    prompt_string, prompt_list = _prop(CompletionRequest, "prompt")["anyOf"]
    assert prompt_string["minLength"] == 1 and prompt_list["items"]["minLength"] == 1
    assert (prompt_list["minItems"], prompt_list["maxItems"]) == (1, 1)
    top_k = _prop(GenerateRequest, "top_k")["anyOf"][0]
    assert (top_k["minimum"], top_k["maximum"]) == (0, 1000)
    repeat = _prop(ChatCompletionRequest, "repeat_penalty")["anyOf"][0]
    assert (repeat["minimum"], repeat["maximum"]) == (0.1, 10.0)
    metadata = _prop(ChatCompletionRequest, "metadata")["anyOf"][0]
    assert metadata["maxProperties"] == 16 and metadata["propertyNames"]["maxLength"] == 64
    assert metadata["additionalProperties"]["maxLength"] == 512
    assert ChatCompletionRequest.model_json_schema()["propertyNames"]["maxLength"] == 64
