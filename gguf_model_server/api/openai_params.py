"""The parameters both OpenAI families (completions, chat completions) share, with their bounds:
what is refused as not supported, what is accepted and ignored (and named back to the client)."""

from __future__ import annotations

import json
import logging
import re
from abc import abstractmethod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from gguf_model_server.api.protocol import (
    STOP_DESCRIPTION,
    ExtraSampling,
    ModelName,
    RequestModel,
    Stop,
    check_stops,
    stop_tuple,
)
from gguf_model_server.generation_params import GenerationParams, MaxTokens, SamplingConfig
from gguf_model_server.structured_output import SchemaNotEnforceable, json_object_grammar, json_schema_grammar
from serving_core.errors import BadRequest, echo
from serving_core.schema_types import Text, invalid

log = logging.getLogger("gguf_model_server.api.openai_params")


class StreamOptions(RequestModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # newer OpenAI options change nothing here
    include_usage: bool = False


# OpenAI parameters that would change the result but this server does not implement: a request that
# sets one gets 400 "not supported" rather than an answer that silently ignores it. Values that
# change nothing (false, null, 0, empty, {"type": "text"}, tool_choice "none") are accepted. A family
# that implements one declares it as a field (chat: tools, tool_choice), so it is never an extra.
UNSUPPORTED_OPENAI = ("echo", "tools", "tool_choice", "functions",
                      "function_call", "logit_bias", "suffix", "best_of", "modalities", "audio", "prediction")


def _neutral(name: str, value: Any) -> bool:
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
        "implemented (echo, logit_bias, ...) are refused with 400.").strip()


class JsonSchemaFormat(BaseModel):
    """OpenAI's ``response_format.json_schema``; ``strict`` or not, the schema is enforced."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: Annotated[Text, Field(max_length=4096)] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def grammar(self) -> str | None:
        """The GBNF grammar this format asks for (None: free text); a 400 naming what cannot be enforced."""
        if self.type == "text":
            return None
        try:
            if self.type == "json_object":
                return json_object_grammar()
            if self.json_schema is None:
                raise BadRequest("response_format: type 'json_schema' needs 'json_schema' with a 'schema'",
                                 param="response_format.json_schema")
            return json_schema_grammar(self.json_schema.schema_ or {})
        except SchemaNotEnforceable as exc:
            raise BadRequest(f"response_format.json_schema.schema.{exc}", param="response_format") from None


class OpenAIParams(RequestModel, ExtraSampling):
    """Fields the official ``openai`` SDK sends. A field that would change the result but is not
    implemented is refused (see ``unsupported``); other unknown fields are kept for the log, within
    bounds (``MAX_EXTRA_*``)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False,
                              json_schema_extra=lambda schema, cls: _describe_extras(schema, cls))

    DEFAULT_MAX_TOKENS: ClassVar[int]  # the family's (generation_params)
    CHAT: ClassVar[bool] = False  # a chat: the model's chat stop strings apply

    model: ModelName | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=128, description="choices per request, at most the model's parallel sequences "
                   "(else 400): the prompt is evaluated once and shared; each choice samples with its own seed "
                   "(seed, seed + 1, ...)")
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
    response_format: ResponseFormat | None = Field(
        default=None, description="'json_object': the answer is a JSON object; 'json_schema': a JSON document "
        "the schema accepts, enforced token by token (a keyword the grammar cannot enforce is refused with 400 "
        "naming it, never ignored); 'text' (default): free text")

    _check_stop = field_validator("stop", mode="before")(check_stops)

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

    @abstractmethod
    def requested_max_tokens(self) -> int | None:
        """The answer length the client asked for, if any (each family says which fields ask)."""

    @abstractmethod
    def requested_logprobs(self) -> int | None:
        """How many alternatives per token the client asked logprobs for (0: the chosen token's only);
        None: no logprobs (each family says which fields ask)."""

    def generation_params(self) -> GenerationParams:
        return GenerationParams(sampling=self.sampling(), stop=stop_tuple(self.stop), cache_prompt=self.cache_prompt,
                                max_tokens=MaxTokens(self.requested_max_tokens(), self.DEFAULT_MAX_TOKENS),
                                chat=self.CHAT,
                                grammar=self.response_format.grammar() if self.response_format else None,
                                logprobs=self.requested_logprobs(), n=self.n)

    def unsupported(self) -> list[str]:
        """The result-changing parameters this request sets that the server does not implement."""
        extra = self.model_extra or {}
        return [k for k in UNSUPPORTED_OPENAI if k in extra and not _neutral(k, extra[k])]

    def ignored(self) -> list[str]:
        """Parameters that change nothing here (``user``, ``metadata``, unknown ones): logged, not refused."""
        unknown = [k for k in (self.model_extra or {}) if k not in UNSUPPORTED_OPENAI]
        return sorted(unknown + [k for k in ("metadata", "user") if getattr(self, k) is not None])




def check_openai_params(req: OpenAIParams) -> None:
    """400 for a parameter that would change the result but is not implemented; unknown harmless
    ones (``user``, ``metadata``, …) are only logged (and named in ``X-Ignored-Parameters``)."""
    unsupported = req.unsupported()
    if unsupported:
        raise BadRequest(f"not supported: {', '.join(unsupported)}; remove the parameter", param=unsupported[0])
    ignored = req.ignored()
    if ignored:
        log.info("ignoring parameters that change nothing here: %s", ", ".join(echo(k) for k in ignored))


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def ignored_header(req: OpenAIParams) -> dict[str, str]:
    """The parameters accepted but ignored, named for the client (they change nothing here)."""
    # Names are the client's: anything beyond a plain identifier is JSON-escaped (a header value must
    # be printable ASCII, without CR/LF).
    ignored = [n if _PLAIN_NAME.fullmatch(n) else json.dumps(n) for n in req.ignored()]
    return {"X-Ignored-Parameters": ", ".join(ignored)} if ignored else {}


def include_usage(req: OpenAIParams) -> bool:
    """A stream ends with a usage chunk only when the client asked (``stream_options.include_usage``)."""
    return bool(req.stream_options and req.stream_options.include_usage)
