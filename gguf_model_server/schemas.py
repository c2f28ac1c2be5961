"""Request and response models of the GGUF server (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving_core.schema_types import Text

MAX_TOKENS_LIMIT = 32_768
Stop = Text | list[Text] | None
ModelName = Annotated[Text, Field(min_length=1, max_length=256,
                                  description="model name; default: the first ready model")]


class RequestModel(BaseModel):
    """Base of every request body: NaN and infinities are refused as numbers (they are not
    meaningful for any parameter here), so the message says so instead of naming a bound."""

    model_config = ConfigDict(allow_inf_nan=False)


def stop_list(stop: Stop) -> list[str]:
    """The stop sequences as the list llama-cpp-python takes."""
    return [stop] if isinstance(stop, str) else (stop or [])


def _stops(v: Stop) -> Stop:
    if isinstance(v, list):
        if len(v) > 16:
            raise ValueError("at most 16 stop sequences")
        if any(not s for s in v):
            raise ValueError("stop sequences must not be empty")
    elif v == "":
        raise ValueError("stop sequence must not be empty")
    return v


class SamplingParams(RequestModel):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: Stop = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)

    _check_stop = field_validator("stop")(_stops)

    def llama_params(self, max_tokens: int) -> dict[str, Any]:
        """Keyword arguments for llama-cpp-python's create_completion / create_chat_completion."""
        return {"max_tokens": max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "stop": stop_list(self.stop), "seed": self.seed}


class GenerateRequest(SamplingParams):
    model: ModelName | None = None
    prompt: Text = Field(min_length=1, description="text to continue")
    max_tokens: int = Field(default=128, ge=1, le=MAX_TOKENS_LIMIT)
    stream: bool = Field(default=False, description="send server-sent events as tokens are generated")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Timings(BaseModel):
    queue_seconds: float = Field(description="waiting for the model to be free")
    generation_seconds: float
    tokens_per_second: float | None


class GenerateResponse(BaseModel):
    model: str
    text: str
    finish_reason: str | None
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
    """The seed's original route, kept for its clients."""

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
    include_usage: bool = False


class OpenAIParams(RequestModel):
    """Fields the official ``openai`` SDK sends; unsupported ones are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

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

    def llama_params(self, max_tokens: int) -> dict[str, Any]:
        return {"max_tokens": max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "stop": stop_list(self.stop), "seed": self.seed, "presence_penalty": self.presence_penalty,
                "frequency_penalty": self.frequency_penalty}


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
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
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

    def effective_max_tokens(self, n_ctx: int) -> int:
        return self.max_completion_tokens or self.max_tokens or min(512, n_ctx // 2)


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


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "gguf-model-server"


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
