"""Turn a sequence's generated token bytes into text that is safe to send: whole UTF-8 characters
only, stop strings found even when they span tokens, and nothing after a stop string ever sent."""

from __future__ import annotations

import codecs


class TextOutput:
    """Incremental text of one generation.

    ``feed`` takes each new token's bytes and returns the text that can be sent now. Text that
    might be the start of a stop string is held back until it is clear either way, so a client
    never receives part of a stop string. ``flush`` releases what was held back at the end.
    """

    def __init__(self, stop: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stop = [s for s in stop if s]
        self._longest = max((len(s) for s in self._stop), default=0)
        self.text = ""  # everything decoded so far
        self._sent = 0  # characters of ``text`` already returned
        self.stopped = False

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the newly sendable text ('' while holding back)."""
        if self.stopped:
            return ""
        self.text += self._decoder.decode(data)
        if not self._stop:
            return self._take(len(self.text))
        # A stop string can only start in the unsent tail or the last characters before it.
        search_from = max(0, self._sent - self._longest + 1)
        hit = min((i for i in (self.text.find(s, search_from) for s in self._stop) if i >= 0), default=-1)
        if hit >= 0:
            self.stopped = True
            self.text = self.text[:hit]
            return self._take(hit)
        return self._take(len(self.text) - self._partial_stop_suffix())

    def flush(self) -> str:
        """The rest of the text at the end of generation (held-back text was no stop string)."""
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
        return self._take(len(self.text))

    def _partial_stop_suffix(self) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of some stop string."""
        tail = self.text[-self._longest:] if self._longest else ""
        for n in range(min(len(tail), self._longest - 1), 0, -1):
            end = tail[-n:]
            if any(s.startswith(end) for s in self._stop):
                return n
        return 0

    def _take(self, upto: int) -> str:
        upto = max(upto, self._sent)
        out = self.text[self._sent:upto]
        self._sent = upto
        return out
