"""faster-whisper's feature extractor with the STFT done in bounded windows (see ``windowed_mel``).

Imported only when a faster-whisper model loads (it imports faster-whisper)."""

from __future__ import annotations

from typing import Any

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

from asr_ocr_model_server.asr.windowed_mel import WHOLE_SIGNAL_FRAMES, WINDOW_FRAMES, frame_count, windowed_log_mel


class WindowedFeatureExtractor(FeatureExtractor):  # type: ignore[misc]  # faster-whisper is untyped
    """Install as ``WhisperModel.feature_extractor``; audio of up to ``whole_signal_frames`` frames goes
    through the original code unchanged."""

    def __init__(self, window_frames: int = WINDOW_FRAMES, whole_signal_frames: int = WHOLE_SIGNAL_FRAMES,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_frames = window_frames
        self.whole_signal_frames = whole_signal_frames
        self._hann = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
        frames = frame_count(waveform.shape[0], padding, self.hop_length)
        if waveform.ndim != 1 or frames <= max(self.whole_signal_frames, self.window_frames):
            return np.asarray(super().__call__(waveform, padding=padding, chunk_length=chunk_length))
        if chunk_length is not None:  # what the original does with it
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        # The original copies the waveform even when it is float32 already: no need.
        wave = np.asarray(waveform, dtype=np.float32)
        return windowed_log_mel(wave, padding, self.n_fft, self.hop_length, self.mel_filters.shape[0],
                                self._log_mel, self.window_frames)

    def _log_mel(self, stretch: np.ndarray) -> np.ndarray:
        # The original's steps for these frames: Hann window, rfft (complex64), power, mel, log10.
        windows = np.lib.stride_tricks.sliding_window_view(stretch, self.n_fft)[::self.hop_length]
        spectrum = np.fft.rfft(windows * self._hann, n=self.n_fft, axis=-1)
        mel = self.mel_filters @ (np.abs(spectrum) ** 2).T
        return np.asarray(np.log10(np.clip(mel, a_min=1e-10, a_max=None)))
