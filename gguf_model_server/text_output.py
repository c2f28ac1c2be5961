"""Turn a sequence's generated token bytes into text that is safe to send: whole UTF-8 characters
only, stop strings found even when they span tokens, and nothing after a stop string ever sent."""

from __future__ import annotations

import codecs


def _failure(pattern: str) -> list[int]:
    """Knuth–Morris–Pratt: for each prefix length n, the length of the longest proper prefix of
    ``pattern`` that is also a suffix of ``pattern[:n]``."""
    fail = [0] * (len(pattern) + 1)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i + 1] = k
    return fail


class TextOutput:
    """Incremental text of one generation.

    ``feed`` takes each new token's bytes and returns the text that can be sent now. Text that
    might be the start of a stop string is held back until it is clear either way, so a client
    never receives part of a stop string. ``flush`` releases what was held back at the end.

    This runs on the model's engine thread for every token of every sequence, so its cost per
    token must not grow with the length of the text or of the stop strings: each stop string keeps
    a KMP automaton state (how much of it the text currently ends with), advanced by the new
    characters only — amortised constant work per character and stop string.
    """

    def __init__(self, stop: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stop = [s for s in stop if s]
        self._fail = [_failure(s) for s in self._stop]
        self._matched = [0] * len(self._stop)  # per stop string: the longest prefix the text ends with
        self._longest = max((len(s) for s in self._stop), default=0)
        self.text = ""  # everything decoded so far
        self._sent = 0  # characters of ``text`` already returned
        self.stopped = False
        self.stop_string: str | None = None  # the stop string that ended the text, once one has

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the newly sendable text ('' while holding back)."""
        if self.stopped:
            return ""
        new = self._decoder.decode(data)
        start = len(self.text)
        self.text += new
        if not self._stop:
            return self._take(len(self.text))
        hit = self._advance(new, start)
        if hit >= 0:
            self.stopped = True
            self.text = self.text[:hit]
            return self._take(hit)
        return self._take(len(self.text) - max(self._matched))

    def flush(self) -> str:
        """The rest of the text at the end of generation (held-back text was no stop string)."""
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
        return self._take(len(self.text))

    def _advance(self, new: str, start: int) -> int:
        """Feed ``new`` (which starts at ``start`` in ``text``) to every stop string's automaton.
        Returns where the earliest-starting stop string completed in it begins, or -1."""
        hit = -1
        for j, stop in enumerate(self._stop):
            fail, k = self._fail[j], self._matched[j]
            for i, ch in enumerate(new):
                while k and stop[k] != ch:
                    k = fail[k]
                if stop[k] == ch:
                    k += 1
                if k == len(stop):
                    begin = start + i + 1 - k
                    if hit < 0 or begin < hit:
                        hit, self.stop_string = begin, stop
                    break  # this stop string's first occurrence; later ones start later
            self._matched[j] = k
        return hit

    def _take(self, upto: int) -> str:
        upto = max(upto, self._sent)
        out = self.text[self._sent:upto]
        self._sent = upto
        return out
