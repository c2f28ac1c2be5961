"""Speech to text on an upload: run the model (whole, or streamed segment by segment), shape the
transcript as each API family returns it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any, Literal

from fastapi import UploadFile
from fastapi.responses import PlainTextResponse

from asr_ocr_model_server.api.transcription.protocol import (
    AsrResponse,
    AsrWord,
    DurationUsage,
    SegmentOut,
    TokenDetails,
    TokenUsage,
    TranscriptionJson,
    TranscriptionVerbose,
    TranscriptTextDelta,
    TranscriptTextDone,
    VerboseSegment,
    WordOut,
)
from asr_ocr_model_server.api.uploads import UploadServing
from asr_ocr_model_server.asr.subtitles import to_srt, to_vtt
from asr_ocr_model_server.asr.transcript import (
    Segment,
    SegmentStream,
    Transcript,
    TranscriptionRequest,
    check_request,
)
from asr_ocr_model_server.audio_input import check_audio, decode_audio
from asr_ocr_model_server.backends import AsrOcrModel, as_asr
from serving_core.streaming import EventStream

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["segment", "word"]
# Whisper's encoder gives 50 positions per second of audio: what "input tokens" are here.
AUDIO_TOKENS_PER_SECOND = 50


async def _run(serving: UploadServing, upload: UploadFile, model: str | None, request: TranscriptionRequest,
               call: Callable[[AsrOcrModel, Any], Any]) -> tuple[str, Any]:
    """Decode the upload and ``call(handle, audio)`` under the model's guard, after the cheap checks."""
    max_seconds = serving.settings.max_audio_seconds

    def check(handle: AsrOcrModel) -> None:
        check_request(as_asr(handle), request)
        check_audio(upload.file, upload.filename)

    def decode(handle: AsrOcrModel, held: ExitStack) -> Any:
        # A model that takes several requests at once lets only one long file in at a time: the
        # decoded audio of a 29-min file is ~115 MB (docs/OPERATIONS.md, memory).
        long_turn: Callable[[], AbstractContextManager[None]] | None = getattr(handle, "long_audio_turn", None)
        return decode_audio(upload.file, upload.filename, max_seconds,
                            on_long=None if long_turn is None else lambda: held.enter_context(long_turn()))

    return await serving.run(model, "asr", check, decode, call)


def _count(serving: UploadServing, name: str, seconds: float) -> None:
    serving.count("audio_seconds", "seconds of audio transcribed", name, seconds)


async def transcribe_upload(serving: UploadServing, upload: UploadFile, model: str | None,
                            request: TranscriptionRequest) -> tuple[str, Transcript]:
    """The whole transcript of the upload, and the name of the model that made it."""
    name, transcript = await _run(serving, upload, model, request,
                                  lambda handle, audio: as_asr(handle).transcribe(audio, request))
    _count(serving, name, transcript.duration)
    return name, transcript


_END = object()


async def stream_upload(serving: UploadServing, upload: UploadFile, model: str | None,
                        request: TranscriptionRequest) -> EventStream:
    """OpenAI's transcription stream: a ``transcript.text.delta`` per segment as it is decoded, then
    ``transcript.text.done``. Returns once decoding has started, so that everything that can fail
    before (model, upload, audio) is still an HTTP error, not an event."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def decode(handle: AsrOcrModel, audio: Any) -> None:
        stream = as_asr(handle).stream(audio, request)
        put(stream)
        for segment in stream.segments:
            if stop.is_set():  # the client left: free the model for the next request
                return
            put(segment)

    work = asyncio.ensure_future(_run(serving, upload, model, request, decode))
    work.add_done_callback(lambda _: queue.put_nowait(_END))

    def close() -> None:
        stop.set()
        work.cancel()  # the guard waits for the worker thread, which stops at its next segment

    try:
        started = await queue.get()
    except asyncio.CancelledError:  # the client left before decoding started
        close()
        raise
    if not isinstance(started, SegmentStream):
        name, _ = work.result()  # raises what stopped it before it started (an HTTP error)
        raise RuntimeError(f"model '{name}' returned no transcription")

    async def events() -> AsyncIterator[object]:
        texts: list[str] = []
        tokens = 0
        while (item := await queue.get()) is not _END:
            assert isinstance(item, Segment)
            if not item.text:
                continue
            tokens += len(item.tokens)
            yield TranscriptTextDelta(delta=item.text if not texts else " " + item.text)
            texts.append(item.text)
        name, _ = work.result()  # an error after the 200 becomes an error event (EventStream)
        _count(serving, name, started.duration)
        audio_tokens = round(started.duration * AUDIO_TOKENS_PER_SECOND)
        yield TranscriptTextDone(text=" ".join(texts), usage=TokenUsage(
            input_tokens=audio_tokens, output_tokens=tokens, total_tokens=audio_tokens + tokens,
            input_token_details=TokenDetails(audio_tokens=audio_tokens)))

    return EventStream(events(), close, model or "default", what="transcription")


def asr_response(name: str, t: Transcript) -> AsrResponse:
    """``/asr``'s answer (the original servers' shape; ``words`` per segment when asked for)."""
    return AsrResponse(model=name, transcript=t.text, language=t.language, duration=round(t.duration, 3),
                       segments=[SegmentOut(start=s.start, end=s.end, text=s.text, words=None if s.words is None else [
                           AsrWord(word=w.word, start=w.start, end=w.end, probability=w.probability)
                           for w in s.words]) for s in t.segments])


def transcription_response(t: Transcript, response_format: ResponseFormat,
                           granularities: frozenset[Granularity] = frozenset(),
                           task: Literal["transcribe", "translate"] = "transcribe") -> Any:
    """OpenAI's answer in the requested ``response_format``."""
    if response_format == "text":
        return PlainTextResponse(t.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(t.segments))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(t.segments), media_type="text/vtt")
    if response_format == "verbose_json":
        segments = None
        if not granularities or "segment" in granularities:
            segments = [VerboseSegment(id=i, seek=0, start=s.start, end=s.end, text=s.text, tokens=s.tokens,
                                       temperature=s.temperature, avg_logprob=s.avg_logprob,
                                       compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob)
                        for i, s in enumerate(t.segments)]
        words = None
        if "word" in granularities:
            words = [WordOut(word=w.word.strip(), start=w.start, end=w.end) for s in t.segments for w in s.words or ()]
        return TranscriptionVerbose(
            task=task, language="english" if task == "translate" else t.language or "",
            duration=round(t.duration, 3), text=t.text, segments=segments, words=words,
            usage=DurationUsage(seconds=round(t.duration, 3)))
    return TranscriptionJson(text=t.text)
