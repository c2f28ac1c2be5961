"""Request and response models of ``/v1/completions``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from gguf_model_server.api.openai_params import OpenAIParams
from gguf_model_server.api.protocol import MAX_TOKENS_LIMIT, Timings, Usage
from gguf_model_server.generation_params import COMPLETION_DEFAULT_MAX_TOKENS
from serving_core.schema_types import Text, invalid

PromptText = Annotated[Text, Field(min_length=1)]


class CompletionRequest(OpenAIParams):
    DEFAULT_MAX_TOKENS: ClassVar[int] = COMPLETION_DEFAULT_MAX_TOKENS

    prompt: PromptText | Annotated[list[PromptText], Field(min_length=1, max_length=1)] = Field(
        description="a non-empty string, or a list holding one")
    max_tokens: int = Field(default=COMPLETION_DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)

    @field_validator("prompt", mode="before")
    @classmethod
    def _one_prompt(cls, v: Any) -> Any:
        # Before the union's checks (the same limits, stated in the schema): one clear message.
        if isinstance(v, list) and len(v) != 1:
            raise invalid("only one prompt per request is supported")
        if v == "" or v == [""]:
            raise invalid("prompt must not be empty")
        return v

    def requested_max_tokens(self) -> int | None:
        return self.sent("max_tokens")

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: str | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    timings: Timings | None = Field(default=None, description="measured (llama-server reports the same)")
