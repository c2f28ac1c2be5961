"""Request and response models of the GGUF server (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from gguf_model_server.llama_native import MAX_CANDIDATES, SamplingConfig
from serving_core.schema_types import Text, invalid

MAX_TOKENS_LIMIT = 32_768
MAX_CHAT_MESSAGES = 2048
# Stop strings are matched on the model's engine thread after every token, for every sequence:
# their number and length bound the work one request adds to its neighbours' steps.
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256
StopText = Annotated[Text, Field(min_length=1, max_length=MAX_STOP_CHARS)]
Stop = StopText | Annotated[list[StopText], Field(max_length=MAX_STOP_SEQUENCES)] | None
STOP_DESCRIPTION = (f"a string or a list of at most {MAX_STOP_SEQUENCES} strings, each 1–{MAX_STOP_CHARS} characters; "
                    "the text ends before the first one generated")
ModelName = Annotated[Text, Field(min_length=1, max_length=256,
                                  description="model name; default: the first ready model")]


class RequestModel(BaseModel):
    """Base of every native request body: unknown fields are refused (422 naming them: a TGI
    client's ``max_new_tokens`` must not silently become the default 128), and NaN and infinities
    are refused as numbers (meaningless for every parameter here)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ExtraSampling(BaseModel):
    """Samplers llama.cpp has beyond OpenAI's set; None = the backend's default."""

    top_k: int | None = Field(
        default=None, ge=0, le=MAX_CANDIDATES,
        description=f"keep the k most likely tokens; default 40. 0 = no top-k cut, but the server never keeps more "
                    f"than the {MAX_CANDIDATES} most likely tokens, so top_p and min_p act on those")
    min_p: float | None = Field(default=None, ge=0.0, le=1.0, description="default 0.05")
    repeat_penalty: float | None = Field(
        default=None, ge=0.1, le=10.0,
        description="divides the logits of the last 64 tokens (multiplies negative ones); 1 = off (default), "
                    "> 1 discourages repetition, < 1 favours it")

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


def _stops(v: Any) -> Any:
    # Runs before the union's own checks (which state the same limits in the schema) so that the
    # message says what is wrong in words, instead of one pydantic error per union member.
    items = v if isinstance(v, list) else [v] if isinstance(v, str) else None
    if items is None:
        return v
    if isinstance(v, list) and len(v) > MAX_STOP_SEQUENCES:
        raise invalid(f"at most {MAX_STOP_SEQUENCES} stop sequences (got {len(v)})")
    for item in items:
        if item == "":
            raise invalid("stop sequences must not be empty")
        if isinstance(item, str) and len(item) > MAX_STOP_CHARS:
            raise invalid(f"a stop sequence is {len(item)} characters; at most {MAX_STOP_CHARS}")
    return v


class SamplingParams(RequestModel, ExtraSampling):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: Stop = Field(default=None, description=STOP_DESCRIPTION)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)

    _check_stop = field_validator("stop", mode="before")(_stops)

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
    stop: Stop = Field(default=None, description=STOP_DESCRIPTION)

    _check_stop = field_validator("stop", mode="before")(_stops)


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


# Bounds for the fields an OpenAI request may carry beyond those declared here (kept, then logged):
# OpenAI's own limits for ``metadata``, and a size limit for every other unknown field, so that a
# request cannot make the server hold megabytes of ignored JSON for as long as it generates.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_USER_CHARS = 256
MAX_EXTRA_FIELDS = 32
MAX_EXTRA_NAME_CHARS = 64
MAX_EXTRA_JSON_CHARS = 4096
Metadata = dict[Annotated[str, Field(max_length=MAX_METADATA_KEY_CHARS)],
                Annotated[Text, Field(max_length=MAX_METADATA_VALUE_CHARS)]]


def _json_chars(value: Any, budget: int) -> int:
    """About how many characters ``value`` takes as JSON, counted only until past ``budget`` (so a
    huge value costs no more than a small one to refuse)."""
    total, stack = 0, [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 3
        elif isinstance(item, dict):
            total += 2
            for k, v in item.items():
                stack.append(v)
                total += len(k) + 4
                if total > budget:
                    break
        elif isinstance(item, list):
            total += 2 + len(item)
            stack.extend(item[: budget + 1])
        else:
            total += len(str(item)) + 1
    return total


def _too_much(name: str, template: str, value: Any, **ctx: Any) -> ValidationError:
    # A ValidationError raised in a model validator keeps its own location: the 422 then names the
    # unknown field as ``param``, like any declared field's error.
    error = InitErrorDetails(type=PydanticCustomError("extra_field_limit", template, ctx), loc=(name,), input=value)
    return ValidationError.from_exception_data("request", [error])


def _describe_extras(schema: dict[str, Any], cls: Any) -> None:
    schema["propertyNames"] = {"maxLength": MAX_EXTRA_NAME_CHARS}
    schema["maxProperties"] = len(cls.model_fields) + MAX_EXTRA_FIELDS
    schema["description"] = (
        f"{(cls.__doc__ or '').strip()}\n\nOther fields are accepted and ignored (logged): at most "
        f"{MAX_EXTRA_FIELDS} of them, names of at most {MAX_EXTRA_NAME_CHARS} characters, each value at most "
        f"{MAX_EXTRA_JSON_CHARS} characters of JSON. OpenAI parameters that would change the result but are not "
        "implemented (logprobs, tools, logit_bias, ...) are refused with 400.").strip()


class OpenAIParams(RequestModel, ExtraSampling):
    """Fields the official ``openai`` SDK sends. A field that would change the result but is not
    implemented is refused (see ``unsupported``); other unknown fields are kept for the log, within
    bounds (``MAX_EXTRA_*``)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False,
                              json_schema_extra=lambda schema, cls: _describe_extras(schema, cls))

    model: ModelName | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=128, description="choices per request: only 1 is supported (else 400)")
    stop: Stop = Field(default=None, description=STOP_DESCRIPTION)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    metadata: Metadata | None = Field(
        default=None, max_length=MAX_METADATA_PAIRS,
        description=f"OpenAI's: at most {MAX_METADATA_PAIRS} pairs, keys of at most {MAX_METADATA_KEY_CHARS} "
                    f"characters, string values of at most {MAX_METADATA_VALUE_CHARS}; accepted and ignored")
    user: Annotated[Text, Field(max_length=MAX_USER_CHARS)] | None = Field(
        default=None, description="an end-user id (OpenAI's); accepted and ignored")

    _check_stop = field_validator("stop", mode="before")(_stops)

    @field_validator("metadata", mode="before")
    @classmethod
    def _few_pairs(cls, v: Any) -> Any:
        # Before pydantic validates (and copies) every pair only to count them afterwards.
        if isinstance(v, dict) and len(v) > MAX_METADATA_PAIRS:
            raise invalid(f"{len(v)} pairs; at most {MAX_METADATA_PAIRS}")
        return v

    @model_validator(mode="after")
    def _bounded_extras(self) -> OpenAIParams:
        extra = self.model_extra or {}
        if len(extra) > MAX_EXTRA_FIELDS:
            raise _too_much(next(iter(extra)), "{count} unknown fields; at most {limit} are accepted",
                            None, count=len(extra), limit=MAX_EXTRA_FIELDS)
        for name, value in extra.items():
            if len(name) > MAX_EXTRA_NAME_CHARS:
                raise _too_much(name[:MAX_EXTRA_NAME_CHARS] + "…", "an unknown field's name is {length} characters; "
                                "at most {limit}", None, length=len(name), limit=MAX_EXTRA_NAME_CHARS)
            if name in UNSUPPORTED_OPENAI:
                continue  # refused with 400 "not supported" unless neutral (and neutral values are small)
            if _json_chars(value, MAX_EXTRA_JSON_CHARS) > MAX_EXTRA_JSON_CHARS:
                raise _too_much(name, "unknown field, ignored here, but larger than {limit} characters of JSON; "
                                "remove it", None, limit=MAX_EXTRA_JSON_CHARS)
        return self

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
                              **self.extra_sampling())

    def unsupported(self) -> list[str]:
        """The result-changing parameters this request sets that the server does not implement."""
        extra = self.model_extra or {}
        return [k for k in UNSUPPORTED_OPENAI if k in extra and not _neutral(k, extra[k])]

    def ignored(self) -> list[str]:
        """Parameters that change nothing here (``user``, ``metadata``, unknown ones): logged, not refused."""
        unknown = [k for k in (self.model_extra or {}) if k not in UNSUPPORTED_OPENAI]
        return sorted(unknown + [k for k in ("metadata", "user") if getattr(self, k) is not None])


PromptText = Annotated[Text, Field(min_length=1)]


class CompletionRequest(OpenAIParams):
    prompt: PromptText | Annotated[list[PromptText], Field(min_length=1, max_length=1)] = Field(
        description="a non-empty string, or a list holding one")
    max_tokens: int = Field(default=16, ge=1, le=MAX_TOKENS_LIMIT)

    @field_validator("prompt", mode="before")
    @classmethod
    def _one_prompt(cls, v: Any) -> Any:
        # Before the union's checks (the same limits, stated in the schema): one clear message.
        if isinstance(v, list) and len(v) != 1:
            raise invalid("only one prompt per request is supported")
        if v == "" or v == [""]:
            raise invalid("prompt must not be empty")
        return v

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


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
    # Bounded: the chat template (Jinja, in Python) renders every message, twice (see chat_template.parts).
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES,
                                        description=f"1 to {MAX_CHAT_MESSAGES} messages")
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
