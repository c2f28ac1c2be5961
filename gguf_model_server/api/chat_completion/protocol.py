"""Request and response models of ``/v1/chat/completions``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.api.openai_params import OpenAIParams
from gguf_model_server.api.protocol import MAX_CHAT_MESSAGES, MAX_TOKENS_LIMIT, RequestModel, Timings, Usage
from gguf_model_server.generation_params import CHAT_DEFAULT_MAX_TOKENS
from serving_core.schema_types import Text


class ContentPart(RequestModel):
    """A part of a message's content. Only text is served; other types (``image_url``,
    ``input_audio``, ``file``) are parsed so that the refusal can name them (400 "not supported")."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # OpenAI content parts carry more
    type: Annotated[str, Field(min_length=1, max_length=64, description="'text'; other types get 400")]
    text: Text | None = None


class ChatMessage(RequestModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None

    def as_llama(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text or "" for p in content)
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content or ""}


class ChatCompletionRequest(OpenAIParams):
    DEFAULT_MAX_TOKENS: ClassVar[int] = CHAT_DEFAULT_MAX_TOKENS
    CHAT: ClassVar[bool] = True

    # Bounded: the chat template (Jinja, in Python) renders every message, twice (see chat_template.parts).
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES,
                                        description=f"1 to {MAX_CHAT_MESSAGES} messages")
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)

    def requested_max_tokens(self) -> int | None:
        """The limit the client set (``max_completion_tokens`` wins, as in OpenAI's API), if any."""
        return self.max_completion_tokens or self.max_tokens


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str | None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    timings: Timings | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    timings: Timings | None = None
