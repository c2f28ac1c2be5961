"""What to generate: one request's parameters, whatever API family it came through.

Each request schema builds them with its own ``generation_params()`` (vLLM's
``to_sampling_params()``), once, before anything is queued; the serving layer turns them into an
engine job, and everything that can fail does so before a response starts (llama-server's
``params_from_json_cmpl``). No llama.cpp or web-framework import here.
"""

from __future__ import annotations

from dataclasses import dataclass

# The one statement of each API family's default answer length (the README's parameter list says the
# same; tests/test_docs_match_code.py checks it). A default is cut to what fits the context; a
# length the client asked for is kept, or refused (400) when it does not fit.
GENERATE_DEFAULT_MAX_TOKENS = 128  # /generate, /inference
COMPLETION_DEFAULT_MAX_TOKENS = 16  # /v1/completions (OpenAI's default)
CHAT_DEFAULT_MAX_TOKENS = 512  # /v1/chat/completions (OpenAI has none)


@dataclass(frozen=True)
class SamplingConfig:
    """One request's sampling parameters (llama.cpp's meaning and defaults)."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int = 64
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @property
    def penalized(self) -> bool:
        """Whether the penalty sampler runs (it then needs the prompt's last tokens as history)."""
        return self.repeat_penalty != 1.0 or bool(self.presence_penalty) or bool(self.frequency_penalty)


@dataclass(frozen=True)
class MaxTokens:
    """The one ``max_tokens`` rule: a length the client asked for (``requested``) is exactly that;
    otherwise the family's ``default``, cut to what the context has left after the prompt."""

    requested: int | None
    default: int

    def resolve(self, n_prompt: int, n_ctx: int) -> int:
        """The hard limit for a prompt of ``n_prompt`` tokens in a context of ``n_ctx``."""
        if self.requested is not None:
            return self.requested
        return min(self.default, n_ctx - n_prompt)

    def reserve(self, n_ctx: int) -> int:
        """The room to keep for the answer when a chat must be shortened to fit (``context_overflow``):
        what was asked for, else the default but at most a quarter of the context."""
        return self.requested if self.requested is not None else min(self.default, n_ctx // 4)


@dataclass(frozen=True)
class GrammarTrigger:
    """Where a lazy grammar starts to hold (llama.cpp's grammar triggers): everything generated before
    is free text, and the grammar is fed from the trigger on (a tool call inside an answer)."""

    words: tuple[str, ...] = ()  # texts that start it wherever they are generated
    # Python regular expressions matched at the start of the answer (while it is short), the grammar
    # taking it from the first group on: how an answer that is a call begins.
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationParams:
    """One request's generation settings, whatever API family it came through."""

    sampling: SamplingConfig
    max_tokens: MaxTokens
    stop: tuple[str, ...] = ()
    cache_prompt: bool | None = None  # None: the model's setting
    chat: bool = False  # a chat: the model's own chat stop strings apply too
    grammar: str | None = None  # GBNF every token must follow (root rule "root")
    grammar_trigger: GrammarTrigger | None = None  # None: the grammar holds from the first token
    logprobs: int | None = None  # each token's logprob and this many alternatives (0: none); None: off
    n: int = 1  # choices: independent samples of the same prompt (seeds seed, seed + 1, ...)
