"""Request and response models of ``/generate`` and ``/inference``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from gguf_model_server.api.protocol import (
    MAX_TOKENS_LIMIT,
    STOP_DESCRIPTION,
    ExtraSampling,
    ModelName,
    RequestModel,
    Stop,
    Timings,
    Usage,
    check_stops,
    stop_tuple,
)
from gguf_model_server.generation_params import (
    GENERATE_DEFAULT_MAX_TOKENS,
    GenerationParams,
    MaxTokens,
    SamplingConfig,
)
from gguf_model_server.structured_output import SchemaNotEnforceable, json_schema_grammar
from serving_core.errors import BadRequest
from serving_core.schema_types import Text

# A grammar is parsed before the request queues, on the request's own worker thread; the bound
# keeps that (and the parser's memory) small.
MAX_GRAMMAR_CHARS = 65_536


class SamplingParams(RequestModel, ExtraSampling):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: Stop = Field(default=None, description=STOP_DESCRIPTION)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)

    _check_stop = field_validator("stop", mode="before")(check_stops)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              **self.extra_sampling())


class GenerateRequest(SamplingParams):
    model: ModelName | None = None
    prompt: Text = Field(min_length=1, description="text to continue")
    max_tokens: int = Field(default=GENERATE_DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT,
                            description="default: 128, cut to what fits the context; a value sent is kept, "
                                        "or refused (400) when prompt + max_tokens exceed the context")
    stream: bool = Field(default=False, description="send server-sent events as tokens are generated")
    grammar: Text | None = Field(
        default=None, min_length=1, max_length=MAX_GRAMMAR_CHARS,
        description="a GBNF grammar (llama.cpp's; root rule 'root') every generated token must follow, as "
                    "llama-server's /completion takes; a grammar that does not parse is refused (400)")

    json_schema: dict[str, Any] | None = Field(
        default=None, description="a JSON schema the text must follow (as llama-server's /completion takes), "
                                  "enforced by a grammar; a keyword it cannot enforce is refused (400 naming it). "
                                  "Either this or grammar")

    def generation_params(self) -> GenerationParams:
        grammar = self.grammar
        if self.json_schema is not None:
            if grammar is not None:
                raise BadRequest("send either grammar or json_schema, not both", param="json_schema")
            try:
                grammar = json_schema_grammar(self.json_schema)
            except SchemaNotEnforceable as exc:
                raise BadRequest(f"json_schema.{exc}", param="json_schema") from None
        return GenerationParams(sampling=self.sampling(), stop=stop_tuple(self.stop), cache_prompt=self.cache_prompt,
                                max_tokens=MaxTokens(self.sent("max_tokens"), GENERATE_DEFAULT_MAX_TOKENS),
                                grammar=grammar)


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
    max_tokens: int = Field(default=GENERATE_DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    stop: Stop = Field(default=None, description=STOP_DESCRIPTION)

    _check_stop = field_validator("stop", mode="before")(check_stops)

    def generation_params(self) -> GenerationParams:
        return GenerationParams(sampling=SamplingConfig(temperature=self.temperature), stop=stop_tuple(self.stop),
                                max_tokens=MaxTokens(self.sent("max_tokens"), GENERATE_DEFAULT_MAX_TOKENS))


class InferenceResponse(BaseModel):
    result: str
