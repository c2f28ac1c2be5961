"""Embeddings (issue 21): the engine's embedding task, ``/v1/embeddings`` through the official
``openai`` SDK, and the embedded all-MiniLM-L6-v2 model.

The tiny models (random weights, a causal llama) are served with ``embeddings: true`` and mean
pooling: what their vectors mean is noise, but how inputs are packed, pooled, ordered and refused
is the engine's, and holds for them too."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import openai
import pytest
from engine_harness import load

from gguf_model_server.llama_backend import LlamaModel
from serving_core.errors import BadRequest

from conftest import assert_error, start_configured

TINY_EMBED = {"embeddings": True, "pooling": "mean", "n_ctx": 64, "parallel": 3, "n_batch": 64, "n_threads": 1}


@pytest.fixture(scope="module")
def tiny_embedder(model_files) -> LlamaModel:
    model = load("tiny-embed", model_files["a"], **TINY_EMBED)
    yield model
    model.close()


def embed(model: LlamaModel, *batches: list[str]) -> list[list[np.ndarray]]:
    """Each batch of inputs as one request, all queued at once."""
    async def run() -> list[list[np.ndarray]]:
        handles = [model.engine.enqueue_embedding(model.tokenize_inputs(b)) for b in batches]
        return [(await h.result())[0] for h in handles]

    return asyncio.run(run())


def test_more_inputs_than_sequences_come_back_in_order_unit_length_and_independent(tiny_embedder) -> None:
    texts = [f"the {word} sat" for word in ("cat", "dog", "king", "cat", "sea", "dog", "cat")]
    together, = embed(tiny_embedder, texts)  # 7 inputs over 3 sequences: 3 decodes
    assert len(together) == 7 and all(v.shape == (tiny_embedder.engine.ctx.n_embd,) for v in together)
    assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-5 for v in together)
    # The same text gets the same vector wherever it sits (its own sequence, whatever shares the decode).
    np.testing.assert_allclose(together[0], together[3], atol=1e-5)
    np.testing.assert_allclose(together[0], together[6], atol=1e-5)
    assert float(together[0] @ together[1]) < 0.9999  # different texts, different vectors
    alone = [embed(tiny_embedder, [t])[0][0] for t in texts[:3]]
    for a, b in zip(alone, together[:3], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_requests_queued_together_each_get_their_own_answers(tiny_embedder) -> None:
    first, second = embed(tiny_embedder, ["alpha one", "beta two"], ["beta two", "gamma", "alpha one", "delta"])
    assert len(first) == 2 and len(second) == 4
    np.testing.assert_allclose(first[0], second[2], atol=1e-4)
    np.testing.assert_allclose(first[1], second[0], atol=1e-4)


def test_a_small_request_is_not_kept_behind_a_large_one(tiny_embedder) -> None:
    async def run() -> tuple[bool, int]:
        engine = tiny_embedder.engine
        large = engine.enqueue_embedding(tiny_embedder.tokenize_inputs([f"sentence {i}" for i in range(60)]))
        small = engine.enqueue_embedding(tiny_embedder.tokenize_inputs(["one sentence"]))
        vectors, _ = await small.result()
        large_done = large._future.done()
        await large.result()
        return large_done, len(vectors)

    large_done, n = asyncio.run(run())
    # Round robin: the small request's input goes into the first decodes, not after the 20 the large
    # one needs (3 sequences per decode).
    assert n == 1 and not large_done


def test_an_embedding_model_refuses_generation_and_too_long_inputs(tiny_embedder) -> None:
    from gguf_model_server.engine import GenerationRequest

    with pytest.raises(BadRequest, match="serves embeddings"):
        tiny_embedder.engine.prepare(GenerationRequest(prompt=[1, 2, 3], max_tokens=1))
    with pytest.raises(BadRequest, match=r"input 1 .* embeds at most 64"):
        tiny_embedder.tokenize_inputs(["fine", [5] * 65])
    with pytest.raises(BadRequest, match="outside the model's vocabulary"):
        tiny_embedder.tokenize_inputs([[10**7]])


@pytest.fixture(scope="module")
def embed_server(module_server, model_files, tmp_path_factory):
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-embed", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_EMBED},
        {"name": "tiny-chat", "backend": "llama_cpp", "path": "tiny-b.gguf", "options": {"n_ctx": 256,
                                                                                       "n_threads": 1}},
    ])


def test_the_sdk_reads_floats_and_base64_alike_and_token_arrays_are_inputs(embed_server) -> None:
    client = openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    texts = ["the cat", "a dog barks", "the cat"]
    floats = client.embeddings.create(model="tiny-embed", input=texts, encoding_format="float")
    packed = client.embeddings.create(model="tiny-embed", input=texts)  # the SDK asks for base64, decodes it
    assert [d.index for d in floats.data] == [0, 1, 2] and floats.model == "tiny-embed"
    np.testing.assert_allclose(np.array([d.embedding for d in floats.data]),
                               np.array([d.embedding for d in packed.data]), atol=1e-6)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 3
    raw = embed_server.client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "the cat",
                                                            "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, floats.data[0].embedding, atol=1e-6)
    one = client.embeddings.create(model="tiny-embed", input=[5, 6, 7, 8])
    assert len(one.data) == 1 and one.usage.prompt_tokens == 4
    two = client.embeddings.create(model="tiny-embed", input=[[5, 6, 7, 8], [9, 10]])
    np.testing.assert_allclose(two.data[0].embedding, one.data[0].embedding, atol=1e-5)
    default = client.embeddings.create(model=None, input="the cat") if False else None
    assert default is None


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"model": "tiny-chat", "input": "x"}, 400, "not served for embeddings"),
    ({"model": "tiny-embed", "input": "x", "dimensions": 3}, 400, "dimensions"),
    ({"model": "tiny-embed", "input": "word " * 80}, 400, "input 0"),
    ({"model": "tiny-embed", "input": [[1, 2], [10**7]]}, 400, "outside the model's vocabulary"),
    ({"model": "tiny-embed", "input": []}, 422, "input"),
    ({"model": "nope", "input": "x"}, 404, "not configured"),
    ({"model": "tiny-embed", "input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
])
def test_what_cannot_be_embedded_gets_a_clear_4xx(embed_server, body, status, text) -> None:
    assert text in assert_error(embed_server.client.post("/v1/embeddings", json=body), status)


def test_health_says_what_each_model_serves(embed_server) -> None:
    models = embed_server.client.get("/health").json()["models"]
    assert (models["tiny-embed"]["task"], models["tiny-chat"]["task"]) == ("embedding", "generation")


def test_without_a_model_the_first_embedding_model_answers(embed_server) -> None:
    r = embed_server.client.post("/v1/embeddings", json={"input": "the cat"})
    assert r.status_code == 200 and r.json()["model"] == "tiny-embed", r.text
    chat = embed_server.client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                                  "max_tokens": 1})
    assert chat.status_code == 200 and chat.json()["model"] == "tiny-chat", chat.text  # not the embedder


@pytest.mark.slow
def test_the_embedded_model_puts_similar_sentences_closer_through_the_sdk(embedded_server) -> None:
    client = openai.OpenAI(base_url=f"{embedded_server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    one = client.embeddings.create(model="all-minilm-l6-v2", input="A cat sits on the mat.")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384 and one.usage.prompt_tokens > 5
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "The stock market fell sharply today.",
             "Shares dropped steeply as markets closed."]
    batch = client.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    vectors = np.array([d.embedding for d in batch.data])
    np.testing.assert_allclose(vectors[0], one.data[0].embedding, atol=1e-4)  # alone or in a batch alike
    cos = vectors @ vectors.T  # unit vectors: cosine similarity
    assert np.allclose(np.diag(cos), 1, atol=1e-4)
    assert cos[0, 1] > cos[0, 2] + 0.2 and cos[0, 1] > cos[0, 3] + 0.2  # the cat near the kitten
    assert cos[2, 3] > cos[2, 0] + 0.2 and cos[2, 3] > cos[2, 1] + 0.2  # the markets near each other
    packed = client.embeddings.create(model="all-minilm-l6-v2", input=texts)  # base64, decoded by the SDK
    np.testing.assert_allclose(np.array([d.embedding for d in packed.data]), vectors, atol=1e-6)
    # Without a model: the embedding model answers (not Gemma, the default for generation).
    assert embedded_server.client.post("/v1/embeddings", json={"input": "x"}).json()["model"] == "all-minilm-l6-v2"
