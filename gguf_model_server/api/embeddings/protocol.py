"""Request and response models of ``POST /v1/embeddings``, as the official ``openai`` SDK sends and
reads them (the SDK asks for base64 unless told otherwise)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.api.protocol import ModelName
from serving_core.schema_types import Text

MAX_INPUTS = 2048  # OpenAI's limit
MAX_INPUT_TOKENS = 65_536
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_INPUT_TOKENS)]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # user, and newer fields: no effect here
    model: ModelName | None = Field(default=None, description="default: the first ready embedding model")
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1, max_length=MAX_INPUTS)] = Field(
        description=f"a string, a list of at most {MAX_INPUTS} strings, a token array, or a list of token arrays")
    encoding_format: Literal["float", "base64"] = Field(default="float", description="base64: little-endian float32")
    dimensions: int | None = Field(default=None, ge=1, description="only the model's own size is served (else 400): "
                                   "these models were not trained to be cut shorter")

    def inputs(self) -> list[str | list[int]]:
        """Every input, each a string or a token array."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [[t for t in self.input if isinstance(t, int)]]
        return [item for item in self.input if isinstance(item, str | list)]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
