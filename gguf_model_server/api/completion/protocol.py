"""Request and response models of ``/v1/completions``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from gguf_model_server.api.openai_params import OpenAIParams
from gguf_model_server.api.protocol import MAX_TOKENS_LIMIT, Timings, Usage
from gguf_model_server.generation_params import COMPLETION_DEFAULT_MAX_TOKENS
from gguf_model_server.logprobs import MAX_TOP_LOGPROBS, TokenLogprob
from serving_core.schema_types import Text, invalid

PromptText = Annotated[Text, Field(min_length=1)]


class CompletionRequest(OpenAIParams):
    DEFAULT_MAX_TOKENS: ClassVar[int] = COMPLETION_DEFAULT_MAX_TOKENS

    prompt: PromptText | Annotated[list[PromptText], Field(min_length=1, max_length=1)] = Field(
        description="a non-empty string, or a list holding one")
    max_tokens: int = Field(default=COMPLETION_DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    logprobs: int | None = Field(
        default=None, ge=0, le=MAX_TOP_LOGPROBS,
        description="each generated token's log-probability and this many most likely alternatives (OpenAI "
                    f"allows up to 5, here up to {MAX_TOP_LOGPROBS}): the model's raw distribution, before "
                    "penalties, temperature and grammar")

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

    def requested_logprobs(self) -> int | None:
        return self.logprobs

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per token."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)

    @classmethod
    def of(cls, entries: list[TokenLogprob], offset: int = 0) -> CompletionLogprobs:
        out = cls()
        for entry in entries:
            out.tokens.append(entry.chosen.text)
            out.token_logprobs.append(entry.chosen.logprob)
            top: dict[str, float] = {}
            for alt in entry.top:  # best first: tokens with the same text (split characters) keep the best
                top.setdefault(alt.text, alt.logprob)
            out.top_logprobs.append(top)
            out.text_offset.append(offset)
            offset += len(entry.chosen.text)
        return out


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    timings: Timings | None = Field(default=None, description="measured (llama-server reports the same)")
