"""How much decoding a request may cost, the same on every Whisper backend.

Whisper decodes each 30 s window until it emits an end token or reaches its token limit, and
redecodes a window that looks wrong (repetitive, or unlikely) at higher temperatures. On silence or
noise it looks wrong every time: 1 s of silence to Whisper base took 80-99 s (six temperatures,
448 tokens each, five samples per temperature). Three bounds make that impossible:

* tokens: audio shorter than a window cannot hold more than ``max_tokens_per_second`` of it
  (fast speech is ~4 words, ~6 tokens per second);
* temperatures: a short fallback schedule (Whisper's has six steps);
* silence: voice activity detection (Silero, bundled in faster-whisper) cuts audio longer than one
  window to its speech, so minutes of silence decode nothing at all; a shorter clip is decoded
  whole, unless VAD hears no speech in it at all (bounded, Whisper still answered 1 s of silence
  with "I'm sorry, I'm sorry, I'm sorry," on Whisper base).
"""

from __future__ import annotations

import math

from asr_ocr_model_server.asr.transcript import WINDOW_SECONDS
from asr_ocr_model_server.backend_options import WhisperDecodingOptions

# Whisper's per-window sample limit (openai-whisper's sample_len: half its 448-token text context,
# the other half being the previous text's prompt); faster-whisper refuses a larger bound.
WINDOW_TOKEN_LIMIT = 220
# A few tokens on top of the rate: the start-of-text, timestamp and end tokens of a short clip.
TOKEN_SLACK = 12


def new_token_bound(duration: float, opts: WhisperDecodingOptions) -> int:
    """The most tokens one window of ``duration`` seconds of audio may decode."""
    seconds = min(max(duration, 0.0), WINDOW_SECONDS)
    return min(WINDOW_TOKEN_LIMIT, math.ceil(seconds * opts.max_tokens_per_second) + TOKEN_SLACK)


def temperatures(requested: float | None, opts: WhisperDecodingOptions) -> tuple[float, ...]:
    """The temperatures a window is decoded at in turn: the requested one first (OpenAI's API: 0
    means "raise it automatically when the decode looks wrong"), then the schedule's higher ones."""
    if requested is None:
        return tuple(opts.temperature_fallback)
    return (requested, *(t for t in opts.temperature_fallback if t > requested))


def use_vad(duration: float, opts: WhisperDecodingOptions) -> bool:
    """Cut the audio to its speech first: by default for audio longer than one window (a short clip is
    one window whatever VAD finds, and VAD can clip the first syllable)."""
    return opts.vad_filter if opts.vad_filter is not None else duration > WINDOW_SECONDS


def gate_with_vad(opts: WhisperDecodingOptions) -> bool:
    """Skip audio in which VAD hears no speech at all, whatever its length (the default; an explicit
    ``vad_filter: false`` decodes everything it is given)."""
    return opts.vad_filter is None
