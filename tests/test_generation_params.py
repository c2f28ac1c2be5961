"""The one layer for "what to generate": each request schema's parameters, and the one max_tokens rule."""

from __future__ import annotations

from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest
from gguf_model_server.api.completion.protocol import CompletionRequest
from gguf_model_server.api.native.protocol import GenerateRequest, InferenceRequest
from gguf_model_server.generation_params import (
    CHAT_DEFAULT_MAX_TOKENS,
    COMPLETION_DEFAULT_MAX_TOKENS,
    GENERATE_DEFAULT_MAX_TOKENS,
    MaxTokens,
)


def test_a_requested_length_is_kept_and_a_default_is_cut_to_what_fits() -> None:
    assert MaxTokens(requested=300, default=128).resolve(n_prompt=1000, n_ctx=1024) == 300  # refused later (400)
    assert MaxTokens(requested=None, default=128).resolve(n_prompt=1000, n_ctx=1024) == 24
    assert MaxTokens(requested=None, default=128).resolve(n_prompt=10, n_ctx=1024) == 128
    # The room a shortened chat keeps for its answer: what was asked, else the default within a quarter.
    assert MaxTokens(requested=700, default=512).reserve(n_ctx=1024) == 700
    assert MaxTokens(requested=None, default=512).reserve(n_ctx=1024) == 256
    assert MaxTokens(requested=None, default=512).reserve(n_ctx=8192) == 512


def test_each_request_schema_builds_its_own_parameters_once() -> None:
    generate = GenerateRequest(prompt="hi", temperature=0, stop="END", top_k=5).generation_params()
    assert generate.max_tokens == MaxTokens(None, GENERATE_DEFAULT_MAX_TOKENS)
    assert generate.stop == ("END",) and generate.sampling.temperature == 0 and generate.sampling.top_k == 5
    assert not generate.chat
    # A length sent equal to the default is still a length asked for (kept, not cut).
    assert GenerateRequest(prompt="hi", max_tokens=128).generation_params().max_tokens.requested == 128
    inference = InferenceRequest(prompt="hi", temperature=0.2, max_tokens=7).generation_params()
    assert inference.max_tokens == MaxTokens(7, GENERATE_DEFAULT_MAX_TOKENS) and inference.sampling.temperature == 0.2
    completion = CompletionRequest(prompt="hi", presence_penalty=0.5).generation_params()
    assert completion.max_tokens == MaxTokens(None, COMPLETION_DEFAULT_MAX_TOKENS)
    assert completion.sampling.presence_penalty == 0.5 and completion.sampling.penalized
    chat = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=50,
                                 max_completion_tokens=20, cache_prompt=False).generation_params()
    assert chat.chat and chat.cache_prompt is False
    assert chat.max_tokens == MaxTokens(20, CHAT_DEFAULT_MAX_TOKENS)  # max_completion_tokens wins, as OpenAI's
