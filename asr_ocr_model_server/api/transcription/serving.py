"""Speech to text on an upload: run the model, shape the transcript as each API family returns it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import UploadFile
from fastapi.responses import PlainTextResponse

from asr_ocr_model_server.api.transcription.protocol import (
    AsrResponse,
    SegmentOut,
    TranscriptionJson,
    TranscriptionVerbose,
    VerboseSegment,
)
from asr_ocr_model_server.api.uploads import UploadServing
from asr_ocr_model_server.asr.subtitles import to_srt, to_vtt
from asr_ocr_model_server.asr.transcript import Transcript, check_language
from asr_ocr_model_server.audio_input import check_audio, decode_audio
from asr_ocr_model_server.backends import AsrOcrModel, as_asr

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]


async def transcribe_upload(serving: UploadServing, upload: UploadFile, model: str | None, language: str | None,
                            prompt: str | None = None, temperature: float | None = None) -> tuple[str, Transcript]:
    """Decode the upload and run the model on it; returns the model name and the transcript."""
    max_seconds = serving.settings.max_audio_seconds

    def check(handle: AsrOcrModel) -> None:
        check_language(as_asr(handle), language)
        check_audio(upload.file, upload.filename)

    name, transcript = await serving.run(
        model, "asr", check,
        lambda: decode_audio(upload.file, upload.filename, max_seconds),
        lambda handle, audio: as_asr(handle).transcribe(audio, language=language, prompt=prompt,
                                                        temperature=temperature),
    )
    serving.count("audio_seconds", "seconds of audio transcribed", name, transcript.duration)
    return name, transcript


def asr_response(name: str, t: Transcript) -> AsrResponse:
    """``/asr``'s answer (the original servers' shape)."""
    return AsrResponse(model=name, transcript=t.text, language=t.language, duration=round(t.duration, 3),
                       segments=[SegmentOut(start=s.start, end=s.end, text=s.text) for s in t.segments])


def transcription_response(t: Transcript, response_format: ResponseFormat) -> Any:
    """OpenAI's answer in the requested ``response_format``."""
    if response_format == "text":
        return PlainTextResponse(t.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(t.segments))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(t.segments), media_type="text/vtt")
    if response_format == "verbose_json":
        return TranscriptionVerbose(
            language=t.language or "", duration=round(t.duration, 3), text=t.text,
            segments=[VerboseSegment(id=i, seek=0, start=s.start, end=s.end, text=s.text, tokens=s.tokens,
                                     temperature=s.temperature, avg_logprob=s.avg_logprob,
                                     compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob)
                      for i, s in enumerate(t.segments)],
        )
    return TranscriptionJson(text=t.text)
