"""Where the speech is: Silero VAD (bundled in faster-whisper) over bounded stretches of audio,
grouped into clips of at most one Whisper window, for both Whisper backends.

faster-whisper's own ``get_speech_timestamps`` pads and reshapes the whole signal and runs the VAD
model on 10,000 frames at once: +430 MB of peak memory for 29 minutes of audio. Run a stretch at a
time, it costs a few MB whatever the length, and the spans are the same except where speech crosses
a stretch boundary (it is split there; grouping joins the halves again when they fit one clip).
"""

from __future__ import annotations

import numpy as np

from asr_ocr_model_server.asr.transcript import SAMPLE_RATE, WINDOW_SECONDS

STRETCH_SECONDS = 60.0


def speech_clips(audio: np.ndarray, max_clip_seconds: float = WINDOW_SECONDS,
                 stretch_seconds: float = STRETCH_SECONDS,
                 first_clip_seconds: float | None = None) -> list[tuple[float, float]] | None:
    """(start, end) seconds of the stretches of ``audio`` (16 kHz float32) to decode: its speech,
    neighbouring spans grouped into clips of at most ``max_clip_seconds`` (the first one of at most
    ``first_clip_seconds``, when given: a stream's first words come sooner). Empty for silence and
    noise; None when faster-whisper (and so the VAD) is not installed."""
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        return None
    options = VadOptions(min_silence_duration_ms=160, max_speech_duration_s=max_clip_seconds)
    stretch = int(stretch_seconds * SAMPLE_RATE)
    spans: list[tuple[float, float]] = []
    for first in range(0, len(audio), stretch):
        for span in get_speech_timestamps(audio[first:first + stretch], options):
            spans.append(((first + span["start"]) / SAMPLE_RATE, (first + span["end"]) / SAMPLE_RATE))
    return group(spans, max_clip_seconds, first_clip_seconds)


def group(spans: list[tuple[float, float]], max_clip_seconds: float,
          first_clip_seconds: float | None = None) -> list[tuple[float, float]]:
    """Consecutive spans joined while the clip they make stays within ``max_clip_seconds`` (Whisper
    pads every window to 30 s: one clip of several short spans costs one window, not several)."""
    clips: list[tuple[float, float]] = []
    for start, end in spans:
        limit = first_clip_seconds if first_clip_seconds is not None and len(clips) == 1 else max_clip_seconds
        if clips and end - clips[-1][0] <= limit:
            clips[-1] = (clips[-1][0], end)
        else:
            clips.append((start, end))
    return clips
