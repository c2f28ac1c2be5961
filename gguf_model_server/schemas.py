"""Request and response models of the GGUF server (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gguf_model_server.llama_native import SamplingConfig
from serving_core.schema_types import Text

MAX_TOKENS_LIMIT = 32_768
Stop = Text | list[Text] | None
ModelName = Annotated[Text, Field(min_length=1, max_length=256,
                                  description="model name; default: the first ready model")]


class RequestModel(BaseModel):
    """Base of every native request body: unknown fields are refused (422 naming them: a TGI
    client's ``max_new_tokens`` must not silently become the default 128), and NaN and infinities
    are refused as numbers (meaningless for every parameter here)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ExtraSampling(BaseModel):
    """Samplers llama.cpp has beyond OpenAI's set; None = the backend's default."""

    top_k: int | None = Field(default=None, ge=0, le=100_000, description="0 = off; default 40")
    min_p: float | None = Field(default=None, ge=0.0, le=1.0, description="default 0.05")
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=10.0, description="1 = off; default 1.0")

    cache_prompt: bool | None = Field(
        default=None,
        description="reuse the KV of a prompt prefix a sequence already holds (default: the model's setting, "
                    "normally true); false = evaluate this request alone from scratch, so that its output "
                    "(temperature 0 or a seed) does not depend on other requests",
    )

    def extra_sampling(self) -> dict[str, Any]:
        return {k: v for k, v in {"top_k": self.top_k, "min_p": self.min_p,
                                  "repeat_penalty": self.repeat_penalty}.items() if v is not None}


def stop_tuple(stop: Stop) -> tuple[str, ...]:
    """The stop sequences of a ``stop`` field (a string or a list)."""
    return (stop,) if isinstance(stop, str) else tuple(stop or ())


def _stops(v: Stop) -> Stop:
    if isinstance(v, list):
        if len(v) > 16:
            raise ValueError("at most 16 stop sequences")
        if any(not s for s in v):
            raise ValueError("stop sequences must not be empty")
    elif v == "":
        raise ValueError("stop sequence must not be empty")
    return v


class SamplingParams(RequestModel, ExtraSampling):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: Stop = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)

    _check_stop = field_validator("stop")(_stops)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              **self.extra_sampling())


class GenerateRequest(SamplingParams):
    model: ModelName | None = None
    prompt: Text = Field(min_length=1, description="text to continue")
    max_tokens: int = Field(default=128, ge=1, le=MAX_TOKENS_LIMIT)
    stream: bool = Field(default=False, description="send server-sent events as tokens are generated")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Timings(BaseModel):
    """Measured per request."""

    queue_seconds: float = Field(description="waiting for a free sequence on the model")
    prompt_seconds: float = Field(description="evaluating the prompt, until the first token was sampled")
    prompt_tokens_cached: int = Field(description="prompt tokens whose KV was reused, not evaluated again")
    generation_seconds: float = Field(description="from the first token sampled to the last")
    tokens_per_second: float | None = Field(description="decode speed after the first token; null under 2 tokens")


class GenerateResponse(BaseModel):
    model: str
    text: str
    finish_reason: Literal["stop", "length"]
    usage: Usage
    timings: Timings


class GenerateStreamEvent(BaseModel):
    """One server-sent event of a streaming /generate: text deltas, then a final event with usage."""

    model: str
    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None


class InferenceRequest(RequestModel):
    """The original servers' route, kept for its clients."""

    model_name: ModelName | None = None
    prompt: Text = Field(min_length=1)
    max_tokens: int = Field(default=128, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    stop: Stop = None

    _check_stop = field_validator("stop")(_stops)


class InferenceResponse(BaseModel):
    result: str


# --- OpenAI-compatible -------------------------------------------------------------------------


class StreamOptions(RequestModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # newer OpenAI options change nothing here
    include_usage: bool = False


# OpenAI parameters that would change the result but this server does not implement: a request that
# sets one gets 400 "not supported" rather than an answer that silently ignores it. Values that
# change nothing (false, null, 0, empty, {"type": "text"}, tool_choice "none") are accepted.
UNSUPPORTED_OPENAI = ("logprobs", "top_logprobs", "echo", "response_format", "tools", "tool_choice", "functions",
                      "function_call", "logit_bias", "suffix", "best_of", "modalities", "audio", "prediction")


def _neutral(name: str, value: Any) -> bool:
    if name == "response_format":
        return value in (None, {"type": "text"})
    if name in ("tool_choice", "function_call"):
        return value in (None, "none", "auto")  # with no tools, "auto" calls nothing
    if name == "best_of":
        return value in (None, 1)
    return not value


class OpenAIParams(RequestModel, ExtraSampling):
    """Fields the official ``openai`` SDK sends. A field that would change the result but is not
    implemented is refused (see ``unsupported``); other unknown fields are kept for the log."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: ModelName | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1, description="only 1 is supported")
    stop: Stop = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)

    _check_stop = field_validator("stop")(_stops)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
                              **self.extra_sampling())

    def unsupported(self) -> list[str]:
        """The result-changing parameters this request sets that the server does not implement."""
        extra = self.model_extra or {}
        return [k for k in UNSUPPORTED_OPENAI if k in extra and not _neutral(k, extra[k])]

    def ignored(self) -> list[str]:
        """Unknown parameters that change nothing here (``user``, ``metadata``, …): logged, not refused."""
        return sorted(k for k in (self.model_extra or {}) if k not in UNSUPPORTED_OPENAI)


class CompletionRequest(OpenAIParams):
    prompt: Text | list[Text] = Field(description="a string, or a list holding one string")
    max_tokens: int = Field(default=16, ge=1, le=MAX_TOKENS_LIMIT)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: Text | list[Text]) -> Text | list[Text]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("only one prompt per request is supported")
        if (v if isinstance(v, str) else v[0]) == "":
            raise ValueError("prompt must not be empty")
        return v

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class ContentPart(RequestModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # OpenAI content parts carry more
    type: Literal["text"]
    text: Text


class ChatMessage(RequestModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None

    def as_llama(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text for p in content)
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content or ""}


class ChatCompletionRequest(OpenAIParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)

    @property
    def requested_max_tokens(self) -> int | None:
        """The limit the client set (``max_completion_tokens`` wins, as in OpenAI's API), if any."""
        return self.max_completion_tokens or self.max_tokens


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


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
    usage: CompletionUsage | None = None
    timings: Timings | None = Field(default=None, description="measured (llama-server reports the same)")


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
    usage: CompletionUsage
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
    usage: CompletionUsage | None = None
    timings: Timings | None = None
