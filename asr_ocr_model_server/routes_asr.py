"""Speech-to-text routes: ``POST /asr`` (kept from the original servers) and OpenAI's
``POST /v1/audio/transcriptions``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import WithJsonSchema

from asr_ocr_model_server.asr.subtitles import to_srt, to_vtt
from asr_ocr_model_server.asr.transcript import Transcript, check_language
from asr_ocr_model_server.audio_input import check_audio, decode_audio
from asr_ocr_model_server.backends import AsrOcrModel, as_asr
from asr_ocr_model_server.model_choice import UploadServing, UploadServingDep
from asr_ocr_model_server.schemas import (
    AsrResponse,
    SegmentOut,
    TranscriptionJson,
    TranscriptionVerbose,
    VerboseSegment,
)
from serving_core.errors import BadRequest, error_responses

LANGUAGE = r"^[a-z]{2,3}$"

# A multipart form has no null: an optional field is either sent (a string) or left out. The schema
# says so, or clients and schema-driven tests send the text "null" (which is not a language).
OptionalText = WithJsonSchema({"type": "string"})
OptionalLanguage = WithJsonSchema({"type": "string", "pattern": LANGUAGE})
# An empty upload is refused (422, "the file is empty"): the schema says a file has bytes.
NON_EMPTY_FILE: dict[str, object] = {"minLength": 1}
ERRORS = error_responses({
    400: "model serves another task",
    413: "upload or image larger than the limit",
    415: "not a supported audio/image file",
    422: "missing field, bad value, or a file that does not decode",
})


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


def asr_router() -> APIRouter:
    router = APIRouter(tags=["asr"])

    @router.post("/asr", response_model=AsrResponse, responses=ERRORS)
    async def asr(
        serving: UploadServingDep,
        audio: Annotated[UploadFile, File(description="WAV, MP3, FLAC, OGG, M4A or WebM",
                                          json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str | None, Form(description="default (or empty): the first ASR model"), OptionalText] = None,
        language: Annotated[str | None, Form(pattern=LANGUAGE, description="ISO-639-1, e.g. 'en'"),
                            OptionalLanguage] = None,
    ) -> AsrResponse:
        """Transcribe an uploaded audio file."""
        name, t = await transcribe_upload(serving, audio, model, language)
        return AsrResponse(model=name, transcript=t.text, language=t.language, duration=round(t.duration, 3),
                           segments=[SegmentOut(start=s.start, end=s.end, text=s.text) for s in t.segments])

    @router.post("/v1/audio/transcriptions", response_model=TranscriptionJson | TranscriptionVerbose,
                 responses={**ERRORS, 200: {"content": {"text/plain": {}}}}, tags=["openai"])
    async def transcriptions(
        serving: UploadServingDep,
        file: Annotated[UploadFile, File(json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str, Form(description="a configured ASR model, or 'whisper-1' for the default")] = "whisper-1",
        language: Annotated[str | None, Form(pattern=LANGUAGE), OptionalLanguage] = None,
        prompt: Annotated[str | None, Form(max_length=2000),
                          WithJsonSchema({"type": "string", "maxLength": 2000})] = None,
        response_format: Annotated[Literal["json", "text", "srt", "vtt", "verbose_json"], Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
        stream: Annotated[bool, Form(description="not supported: must be false")] = False,
        timestamp_granularities: Annotated[
            list[Literal["segment", "word"]] | None,
            Form(alias="timestamp_granularities[]", description="only 'segment' is supported"),
            WithJsonSchema({"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}}),
        ] = None,
    ) -> Any:
        """OpenAI-compatible transcription, as the ``openai`` SDK's ``audio.transcriptions.create``."""
        if stream:
            raise BadRequest("not supported: stream; transcriptions are returned whole", param="stream")
        if timestamp_granularities and "word" in timestamp_granularities:
            raise BadRequest("not supported: word timestamps; only 'segment' granularity is available",
                             param="timestamp_granularities")
        _, t = await transcribe_upload(serving, file, model, language, prompt, temperature)
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

    return router
