"""A prompt cache in host memory (llama-server's ``--cache-ram``): the KV state of a sequence about to
be overwritten by another prompt is kept here, within a byte budget (least recently used out first),
and put back when a prompt that starts the same way returns — a conversation that lost its slot to
others does not evaluate its whole history again.

Used by the engine thread only; the counters are read by /metrics from other threads (plain ints).
No llama.cpp import here: the engine hands in and takes out opaque states (their size counts).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sized
from dataclasses import dataclass
from typing import Generic, TypeVar

# Below this many tokens a state is not worth the copy (and a match this short is not a conversation).
MIN_TOKENS = 32


State = TypeVar("State", bound=Sized)


@dataclass(frozen=True)
class CachedPrompt(Generic[State]):
    tokens: tuple[int, ...]  # what the state holds, position by position
    state: State  # llama_state_seq_get_data of one sequence (opaque here: only its size counts)


def common_prefix(a: tuple[int, ...] | list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptCache(Generic[State]):
    """KV states by the tokens they hold, least recently used first out, at most ``limit_bytes``."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._entries: OrderedDict[tuple[int, ...], CachedPrompt[State]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def worth_saving(self, tokens: list[int], kept: int) -> bool:
        """Whether a sequence holding ``tokens``, of which only ``kept`` stay, should be saved first."""
        return self.limit_bytes > 0 and len(tokens) >= MIN_TOKENS and len(tokens) - kept >= MIN_TOKENS

    def save(self, tokens: list[int], state: State) -> None:
        if len(state) > self.limit_bytes:
            return
        key = tuple(tokens)
        # A state whose tokens start this one's is superseded by it (the same conversation, shorter).
        for old in [k for k in self._entries if len(k) <= len(key) and key[:len(k)] == k]:
            self._drop(old)
        self._entries[key] = CachedPrompt(key, state)
        self.bytes += len(state)
        while self.bytes > self.limit_bytes:
            self._drop(next(iter(self._entries)))

    def take(self, prompt: list[int], better_than: int) -> CachedPrompt[State] | None:
        """The saved state sharing the longest start with ``prompt``, if longer than ``better_than``
        tokens (what the slot already holds) and worth it. Counts a hit or a miss. A state that
        ``prompt`` continues whole leaves the cache (the slot holds it now, and saves it again, longer,
        when it is overwritten); one shared only in part (a common system prompt) stays for others."""
        best: CachedPrompt[State] | None = None
        best_len = max(better_than, MIN_TOKENS - 1)
        for entry in self._entries.values():
            n = common_prefix(entry.tokens, prompt)
            if n > best_len:
                best, best_len = entry, n
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        if best_len == len(best.tokens):
            self._drop(best.tokens)
        else:
            self._entries.move_to_end(best.tokens)
        return best

    def _drop(self, key: tuple[int, ...]) -> None:
        entry = self._entries.pop(key)
        self.bytes -= len(entry.state)
