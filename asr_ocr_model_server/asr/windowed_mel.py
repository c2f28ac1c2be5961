"""Whisper's log-mel features computed window by window, so long audio costs bounded memory.

Both Whisper libraries take the STFT of the whole signal at once: for 29 minutes of audio the frame
matrix, the complex spectrum and their copies took +1.4 GB (faster-whisper) and +0.8 GB
(openai-whisper) of RSS, for a 53 MB result. Here the same steps (zero padding, reflect padding,
Hann window, FFT, power, mel filters, log10, then the clamp to 8 below the whole signal's maximum)
run ``WINDOW_FRAMES`` frames at a time into the preallocated result: the peak above the result
is ~13 MB whatever the length, and the numbers equal the originals' to the last bit or two (the
tests compare them). Each backend supplies its own library's per-window computation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# 10 s of frames (10 ms hop): +13 MB of temporaries at the peak (30 s windows: +36 MB), and 29 min of
# audio still take under a second (faster than the whole-signal STFT, which misses the caches).
WINDOW_FRAMES = 1000
# Up to this many frames (60 s, padding included) the libraries' own whole-signal code runs: it
# costs at most ~50 MB there, and it is the quicker one for short inputs (windowing made a 1.5 s
# clip through openai-whisper, which pads every input with 30 s of zeros, 18 % slower per call).
WHOLE_SIGNAL_FRAMES = 6000

LogMel = Callable[[np.ndarray], np.ndarray]
"""log10(max(mel power, 1e-10)) of every frame of a stretch of the padded signal, shape (mels, frames),
computed as the library computes it (its window, FFT and filters)."""


def frame_count(samples: int, padding: int, hop: int) -> int:
    """How many feature frames the originals return: ``1 + (samples + padding) // hop`` STFT frames,
    the last one dropped."""
    return (samples + padding) // hop


def windowed_log_mel(wave: np.ndarray, padding: int, n_fft: int, hop: int, n_mels: int, log_mel: LogMel,
                     window_frames: int = WINDOW_FRAMES) -> np.ndarray:
    """The log-mel features of 1-D float32 ``wave`` followed by ``padding`` zeros, ``(n_mels, frames)``
    float32, computed ``window_frames`` frames at a time by ``log_mel``."""
    padded = int(wave.shape[0]) + padding
    frames = frame_count(int(wave.shape[0]), padding, hop)
    out = np.empty((n_mels, frames), dtype=np.float32)
    top = np.float32(-np.inf)
    for first in range(0, frames, window_frames):
        last = min(first + window_frames, frames)
        part = log_mel(padded_stretch(wave, padded, n_fft // 2, first * hop, (last - 1) * hop + n_fft))
        out[:, first:last] = part
        top = max(top, np.float32(part.max()))
    # The originals' clamp and scaling (float32 throughout, as theirs), over the whole signal, in place.
    np.maximum(out, top - np.float32(8.0), out=out)
    out += np.float32(4.0)
    out /= np.float32(4.0)
    return out


def padded_stretch(wave: np.ndarray, padded: int, half: int, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of ``wave`` as the STFT sees it: zeros appended up to ``padded``
    samples, then ``half`` samples reflected at each end (numpy's and torch's ``reflect`` mode)."""
    real = int(wave.shape[0])

    def signal_at(index: np.ndarray) -> np.ndarray:
        return np.where(index < real, wave[np.minimum(index, real - 1)], np.float32(0.0))

    lo, hi = start - half, stop - half  # in the zero-padded signal's coordinates
    stretch = np.zeros(stop - start, dtype=np.float32)
    copy_lo, copy_hi = max(lo, 0), min(hi, real)
    if copy_lo < copy_hi:
        stretch[copy_lo - lo:copy_hi - lo] = wave[copy_lo:copy_hi]
    if lo < 0:
        index = np.arange(lo, min(hi, 0))
        stretch[:index.size] = signal_at(-index)
    if hi > padded:
        index = np.arange(max(lo, padded), hi)
        stretch[index - lo] = signal_at(2 * (padded - 1) - index)
    return stretch
