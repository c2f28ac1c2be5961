"""Tokens a text server must never emit: llama.cpp control tokens other than end-of-generation
(`<bos>`, `<pad>`, `<unusedN>`, …) and multimodal placeholders that models mark as ordinary
"user-defined" tokens (Gemma 3's `<start_of_image>`), which detokenize to literal text.

A blanket ban on user-defined tokens would be wrong: Gemma also marks runs of newlines, spaces and
HTML tags that way. The vocabulary scan (~0.15 s for Gemma's 262k tokens) runs in a low-priority
background thread started at load, so it adds nothing to cold start; the first generation waits
for it only if it has not finished yet.
"""

from __future__ import annotations

import contextlib
import os
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
        self._ids: np.ndarray | None = None
        self._thread = threading.Thread(target=self._scan, args=(llm,), name="special-token-scan", daemon=True)
        self._thread.start()

    def _scan(self, llm: Any) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread's own priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # after loads and requests
        self._ids = scan_suppressed(llm)

    @property
    def ids(self) -> np.ndarray:
        self._thread.join()
        return self._ids if self._ids is not None else np.zeros(0, dtype=np.intp)

    def __call__(self, _input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores[self.ids] = -np.inf
        return scores
