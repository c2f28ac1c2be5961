"""Ollama's API under ``/api`` (the routes its clients call), NDJSON streaming by default. Errors in
Ollama's shape, ``{"error": "..."}``; the model-management routes answer 501: models are configured
here, not pulled."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gguf_model_server.api.dependencies import OllamaServingDep
from gguf_model_server.api.generation import GENERATION_ERRORS
from gguf_model_server.api.ollama.protocol import (
    OllamaChatRequest,
    OllamaChatResponse,
    OllamaEmbeddingsRequest,
    OllamaEmbeddingsResponse,
    OllamaEmbedRequest,
    OllamaEmbedResponse,
    OllamaGenerateRequest,
    OllamaGenerateResponse,
    OllamaPsResponse,
    OllamaShowRequest,
    OllamaShowResponse,
    OllamaTagsResponse,
    OllamaVersionResponse,
)
from gguf_model_server.api.ollama.serving import OLLAMA_API_VERSION
from serving_core.errors import BadRequest

_MANAGEMENT = [("POST", "/pull"), ("POST", "/push"), ("POST", "/create"), ("POST", "/copy"), ("DELETE", "/delete"),
               ("POST", "/blobs/{digest}"), ("HEAD", "/blobs/{digest}")]


def ollama_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["ollama"])

    @router.get("/version", response_model=OllamaVersionResponse)
    async def version() -> OllamaVersionResponse:
        """The Ollama API version these routes follow."""
        return OllamaVersionResponse(version=OLLAMA_API_VERSION)

    @router.get("/tags", response_model=OllamaTagsResponse)
    async def tags(serving: OllamaServingDep) -> OllamaTagsResponse:
        """The configured models (``ollama.list()``)."""
        return serving.tags()

    @router.get("/ps", response_model=OllamaPsResponse)
    async def ps(serving: OllamaServingDep) -> OllamaPsResponse:
        """The loaded models, each with when its ``keep_alive`` runs out (``ollama.ps()``)."""
        return serving.ps()

    @router.post("/show", response_model=OllamaShowResponse, responses=GENERATION_ERRORS)
    async def show(req: OllamaShowRequest, serving: OllamaServingDep) -> OllamaShowResponse:
        """A model's details, template and capabilities (``ollama.show()``)."""
        name = req.model or req.name
        if name is None:
            raise BadRequest("model: name the model to show", param="model")
        return serving.show(name)

    @router.post("/chat", response_model=OllamaChatResponse, responses=GENERATION_ERRORS)
    async def chat(req: OllamaChatRequest, request: Request,
                   serving: OllamaServingDep) -> OllamaChatResponse | StreamingResponse:
        """A chat turn (``ollama.chat()``): NDJSON pieces unless ``stream: false``."""
        chat_req, admitted = await serving.admit_chat(req)
        if req.stream:
            return serving.chat_stream(chat_req, admitted)
        return await serving.chat_answer(chat_req, admitted, request)

    @router.post("/generate", response_model=OllamaGenerateResponse, responses=GENERATION_ERRORS)
    async def generate(req: OllamaGenerateRequest, request: Request,
                       serving: OllamaServingDep) -> OllamaGenerateResponse | StreamingResponse:
        """A completion of ``prompt`` (``ollama.generate()``), through the model's chat template unless
        ``raw`` or the model has none; an empty prompt loads the model (``keep_alive`` 0: unloads it)."""
        if not req.prompt:
            return await serving.load_or_unload(req)
        chat_req, admitted = await serving.admit_generate(req)
        if req.stream:
            return serving.generate_stream(chat_req, admitted)
        return await serving.generate_answer(chat_req, admitted, request)

    @router.post("/embed", response_model=OllamaEmbedResponse, responses=GENERATION_ERRORS)
    async def embed(req: OllamaEmbedRequest, serving: OllamaServingDep) -> OllamaEmbedResponse:
        """Unit-length embeddings of each input (``ollama.embed()``), from an embedding model."""
        return await serving.embed(req)

    @router.post("/embeddings", response_model=OllamaEmbeddingsResponse, responses=GENERATION_ERRORS)
    async def embeddings(req: OllamaEmbeddingsRequest, serving: OllamaServingDep) -> OllamaEmbeddingsResponse:
        """The older single-prompt form of ``/api/embed``."""
        return await serving.embeddings_legacy(req)

    async def not_here() -> JSONResponse:
        return JSONResponse({"error": "not supported: models are configured in this server's config (see the "
                                      "README), not pulled, pushed, created, copied or deleted through the API"},
                            status_code=501)

    for method, path in _MANAGEMENT:
        router.add_api_route(path, not_here, methods=[method], include_in_schema=False)
    return router
