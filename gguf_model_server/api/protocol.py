"""Request and response pieces every generation API shares: bounds, stop strings, sampling
fields, usage and timings (they make the OpenAPI schemas)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.llama_native import MAX_CANDIDATES
from serving_core.schema_types import Text, invalid

if TYPE_CHECKING:
    from gguf_model_server.engine import GenerationStats

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

    def sent(self, field: str) -> int | None:
        """The field's value if the client sent it (not its default): a length asked for is kept."""
        value = getattr(self, field)
        return value if field in self.model_fields_set else None


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


def check_stops(v: Any) -> Any:
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


class Timings(BaseModel):
    """Measured per request."""

    queue_seconds: float = Field(description="waiting for a free sequence on the model")
    prompt_seconds: float = Field(description="evaluating the prompt, until the first token was sampled")
    prompt_tokens_cached: int = Field(description="prompt tokens whose KV was reused, not evaluated again")
    prompt_tokens_from_ram: int = Field(default=0, description="of those, restored from the RAM prompt cache "
                                        "(the conversation had lost its sequence to others)")
    generation_seconds: float = Field(description="from the first token sampled to the last")
    tokens_per_second: float | None = Field(description="decode speed after the first token; null under 2 tokens")


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(description="prompt tokens whose KV was reused (a sequence's or the RAM cache's)")


class Usage(BaseModel):
    """Tokens counted per request (OpenAI's ``usage``; the native routes report the same)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None

    @classmethod
    def of(cls, *choices: GenerationStats) -> Usage:
        """One request's tokens: its prompt once (``n`` choices share it), every choice's answer."""
        completion = sum(stats.completion_tokens for stats in choices)
        return cls(prompt_tokens=choices[0].prompt_tokens, completion_tokens=completion,
                   total_tokens=choices[0].prompt_tokens + completion,
                   prompt_tokens_details=PromptTokensDetails(cached_tokens=choices[0].cached_prompt_tokens))
