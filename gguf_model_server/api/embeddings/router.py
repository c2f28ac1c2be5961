"""``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter

from gguf_model_server.api.dependencies import EmbeddingServingDep
from gguf_model_server.api.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from gguf_model_server.api.generation import GENERATION_ERRORS


def embeddings_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/embeddings", response_model=EmbeddingResponse, responses=GENERATION_ERRORS)
    async def embeddings(req: EmbeddingRequest, serving: EmbeddingServingDep) -> EmbeddingResponse:
        """Unit-length embeddings of each input, as the ``openai`` SDK's ``embeddings.create``, from a model
        served with ``options.embeddings: true`` (the embedded all-MiniLM-L6-v2 by default)."""
        return await serving.embeddings(req)

    return router
