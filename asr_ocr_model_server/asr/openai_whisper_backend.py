"""ASR through openai-whisper (PyTorch): a checkpoint file, or a model name found in the local cache only."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from asr_ocr_model_server.asr.decoding import gate_with_vad, new_token_bound, temperatures, use_vad
from asr_ocr_model_server.asr.transcript import (
    SAMPLE_RATE,
    Segment,
    SegmentStream,
    Transcript,
    TranscriptionRequest,
    Word,
    join_text,
    silence,
)
from asr_ocr_model_server.asr.vad import speech_clips
from asr_ocr_model_server.asr.windowed_mel import WHOLE_SIGNAL_FRAMES, frame_count, windowed_log_mel
from asr_ocr_model_server.backend_options import OpenAIWhisperOptions
from serving_core.errors import PermanentLoadError
from serving_core.specs import ModelSpec, parse_options, require_path


def _cache_dir(opts: OpenAIWhisperOptions) -> Path:
    if opts.cache_dir:
        return Path(opts.cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"


def resolve_checkpoint(spec: ModelSpec, model_dir: str | None, opts: OpenAIWhisperOptions) -> Path:
    """A checkpoint path, or ``<cache>/<name>.pt`` for a model name; never a download."""
    if spec.path is None:
        raise PermanentLoadError("openai_whisper needs `path`: a checkpoint file or a model name such as 'base.en'")
    path = spec.resolved_path(model_dir)
    if path is not None and (path.exists() or "/" in spec.path or spec.path.endswith(".pt")):
        return require_path(path, "whisper checkpoint", hint=spec.path_hint(model_dir))
    cached = _cache_dir(opts) / f"{spec.path}.pt"
    if not cached.exists():
        raise PermanentLoadError(
            f"whisper model '{spec.path}' is not in the local cache ({cached}); this server never downloads. "
            "Put the checkpoint there or give its path"
        )
    return require_path(cached, "whisper checkpoint")


class OpenAIWhisperModel:
    def __init__(self, model: Any, opts: OpenAIWhisperOptions) -> None:
        self.model = model
        self.opts = opts

    def stream(self, audio: np.ndarray, request: TranscriptionRequest) -> SegmentStream:
        """openai-whisper decodes the whole file in one call: the segments come when it is done."""
        transcript = self.transcribe(audio, request)
        return SegmentStream(language=transcript.language, duration=transcript.duration,
                             segments=iter(transcript.segments))

    def transcribe(self, audio: np.ndarray, request: TranscriptionRequest) -> Transcript:
        import whisper

        opts = self.opts
        duration = len(audio) / SAMPLE_RATE
        kwargs: dict[str, Any] = {
            "fp16": False, "verbose": None, "condition_on_previous_text": opts.condition_on_previous_text,
            "temperature": temperatures(request.temperature, opts), "sample_len": new_token_bound(duration, opts),
            "word_timestamps": request.word_timestamps, "task": request.task or "transcribe",
        }
        if opts.beam_size:
            kwargs["beam_size"] = opts.beam_size
        lang = request.language or opts.language
        if not self.model.is_multilingual:
            lang = lang or "en"
        if use_vad(duration, opts) or gate_with_vad(opts):
            clips = speech_clips(audio)
            if clips == []:  # nothing but silence and noise: nothing to decode
                return Transcript(text="", language=lang, duration=duration, segments=[])
            if clips is not None and use_vad(duration, opts):
                kwargs["clip_timestamps"] = [t for clip in clips for t in clip]
        result = whisper.transcribe(self.model, audio, language=lang, initial_prompt=request.prompt, **kwargs)
        segs = [Segment(start=float(s["start"]), end=float(s["end"]), text=str(s["text"]).strip(),
                        avg_logprob=float(s.get("avg_logprob", 0.0)),
                        no_speech_prob=float(s.get("no_speech_prob", 0.0)),
                        compression_ratio=float(s.get("compression_ratio", 0.0)),
                        temperature=float(s.get("temperature", 0.0)), tokens=list(s.get("tokens", [])),
                        words=None if "words" not in s else [
                            Word(start=round(float(w["start"]), 3), end=round(float(w["end"]), 3), word=str(w["word"]),
                                 probability=round(float(w.get("probability", 0.0)), 4)) for w in s["words"]])
                for s in result["segments"]]
        return Transcript(text=join_text(segs), language=result.get("language"), duration=duration, segments=segs)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.is_multilingual)

    @property
    def languages(self) -> frozenset[str]:
        from whisper.tokenizer import LANGUAGES

        return frozenset(list(LANGUAGES)[:self.model.num_languages])

    def warmup(self) -> None:
        self.transcribe(silence(), TranscriptionRequest(temperature=0.0))


def windowed_log_mel_spectrogram(audio: Any, n_mels: int = 80, padding: int = 0, device: Any = None) -> Any:
    """``whisper.audio.log_mel_spectrogram`` with the STFT done in bounded windows (``windowed_mel``):
    the same tensor (to float precision) for a CPU float32 array or tensor; anything else, and audio
    of up to ``WHOLE_SIGNAL_FRAMES`` frames, goes to the original."""
    import torch
    from whisper import audio as whisper_audio

    wave = audio.numpy() if isinstance(audio, torch.Tensor) and audio.device.type == "cpu" else audio
    if (device is not None or not isinstance(wave, np.ndarray) or wave.dtype != np.float32 or wave.ndim != 1
            or frame_count(wave.shape[0], padding, whisper_audio.HOP_LENGTH) <= WHOLE_SIGNAL_FRAMES):
        return whisper_audio.log_mel_spectrogram(audio, n_mels, padding, device)
    n_fft, hop = whisper_audio.N_FFT, whisper_audio.HOP_LENGTH
    window = torch.hann_window(n_fft)
    filters = whisper_audio.mel_filters(torch.device("cpu"), n_mels)

    def log_mel(stretch: np.ndarray) -> np.ndarray:
        # The original's steps for these frames (its reflect padding is already in ``stretch``).
        stft = torch.stft(torch.from_numpy(stretch), n_fft, hop, window=window, center=False, return_complex=True)
        mel = filters @ (stft.abs() ** 2)
        return np.asarray(torch.clamp(mel, min=1e-10).log10().numpy())

    with torch.inference_mode():
        return torch.from_numpy(windowed_log_mel(wave, padding, n_fft, hop, n_mels, log_mel))


def _install_windowed_mel() -> None:
    """Make ``whisper.transcribe`` compute its features in windows: it calls the module-level name
    ``log_mel_spectrogram`` on the whole audio (+0.8 GB for 29 min) and takes no features of ours."""
    module: Any = importlib.import_module("whisper.transcribe")  # the module, not the function of that name
    module.log_mel_spectrogram = windowed_log_mel_spectrogram


def load(spec: ModelSpec, model_dir: str | None) -> OpenAIWhisperModel:
    opts = parse_options(OpenAIWhisperOptions, spec)
    path = resolve_checkpoint(spec, model_dir, opts)
    import whisper

    _install_windowed_mel()
    return OpenAIWhisperModel(whisper.load_model(str(path), device="cpu"), opts)
