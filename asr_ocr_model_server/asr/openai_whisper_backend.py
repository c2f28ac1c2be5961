"""ASR through openai-whisper (PyTorch): a checkpoint file, or a model name found in the local cache only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from asr_ocr_model_server.asr.transcript import Segment, Transcript, silence
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

    def transcribe(self, audio: np.ndarray, *, language: str | None, prompt: str | None,
                   temperature: float | None) -> Transcript:
        import whisper

        kwargs: dict[str, Any] = {"fp16": False, "verbose": None,
                                  "condition_on_previous_text": self.opts.condition_on_previous_text}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if self.opts.beam_size:
            kwargs["beam_size"] = self.opts.beam_size
        lang = language or self.opts.language
        if not self.model.is_multilingual:
            lang = lang or "en"
        result = whisper.transcribe(self.model, audio, language=lang, initial_prompt=prompt, **kwargs)
        segs = [Segment(start=float(s["start"]), end=float(s["end"]), text=str(s["text"]).strip(),
                        avg_logprob=float(s.get("avg_logprob", 0.0)),
                        no_speech_prob=float(s.get("no_speech_prob", 0.0)),
                        compression_ratio=float(s.get("compression_ratio", 0.0)),
                        temperature=float(s.get("temperature", 0.0)), tokens=list(s.get("tokens", [])))
                for s in result["segments"]]
        return Transcript(text=str(result["text"]).strip(), language=result.get("language"),
                          duration=len(audio) / 16_000, segments=segs)

    def warmup(self) -> None:
        self.transcribe(silence(), language=None, prompt=None, temperature=0.0)


def load(spec: ModelSpec, model_dir: str | None) -> OpenAIWhisperModel:
    opts = parse_options(OpenAIWhisperOptions, spec)
    path = resolve_checkpoint(spec, model_dir, opts)
    import whisper

    return OpenAIWhisperModel(whisper.load_model(str(path), device="cpu"), opts)
