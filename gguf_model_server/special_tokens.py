"""Tokens a text server must never emit: llama.cpp control tokens other than end-of-generation
(`<bos>`, `<pad>`, `<unusedN>`, …) and multimodal placeholders that models mark as ordinary
"user-defined" tokens (Gemma 3's `<start_of_image>`), which detokenize to literal text.

A blanket ban on user-defined tokens would be wrong: Gemma also marks runs of newlines, spaces and
HTML tags that way. The vocabulary scan (~0.15 s for Gemma's 262k tokens, one ctypes call per
token, holding the GIL) runs on a model's first generation, not at load: at start-up it would
compete with the other models' loads and the web stack's imports, which are the cold start.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

# Placeholders for other modalities, which a text-only server cannot use.
_PLACEHOLDER = re.compile(r"^(?:<(?:start|end)_of_\w+>|<\w*(?:image|audio|video)\w*>|\[multimodal\])$")
_ATTR_UNUSED = 1 << 1
_ATTR_CONTROL = 1 << 3
_ATTR_USER_DEFINED = 1 << 4


def scan_suppressed(llm: Any) -> np.ndarray:
    """The ids of every token ``llm`` must never emit (see the module docstring)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    banned: list[int] = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if not attr & (_ATTR_CONTROL | _ATTR_UNUSED | _ATTR_USER_DEFINED):
            continue
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            continue  # end-of-generation must stay possible
        control = attr & (_ATTR_CONTROL | _ATTR_UNUSED)
        if control or _PLACEHOLDER.match(llm.detokenize([token], special=True).decode("utf-8", "replace")):
            banned.append(token)
    return np.asarray(banned, dtype=np.intp)


class SpecialTokenFilter:
    """A llama-cpp-python logits processor that makes the suppressed tokens impossible to sample."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._ids: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def ids(self) -> np.ndarray:
        if self._ids is None:
            with self._lock:
                if self._ids is None:
                    self._ids = scan_suppressed(self._llm)
        return self._ids

    def __call__(self, _input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores[self.ids] = -np.inf
        return scores
