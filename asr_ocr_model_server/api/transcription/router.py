"""Speech-to-text routes: ``POST /asr`` (kept from the original servers) and OpenAI's
``POST /v1/audio/transcriptions``."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import WithJsonSchema

from asr_ocr_model_server.api.dependencies import UploadServingDep
from asr_ocr_model_server.api.transcription.protocol import AsrResponse, TranscriptionJson, TranscriptionVerbose
from asr_ocr_model_server.api.transcription.serving import (
    Granularity,
    ResponseFormat,
    asr_response,
    stream_upload,
    transcribe_upload,
    transcription_response,
)
from asr_ocr_model_server.api.uploads import NON_EMPTY_FILE, UPLOAD_ERRORS, OptionalText
from asr_ocr_model_server.asr.transcript import TranscriptionRequest
from serving_core.errors import BadRequest

LANGUAGE = r"^[a-z]{2,3}$"
OptionalLanguage = WithJsonSchema({"type": "string", "pattern": LANGUAGE})


TimestampGranularities = Annotated[
    list[Granularity] | None,
    WithJsonSchema({"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}}),
]


def granularities(*sent: list[Granularity] | None) -> frozenset[Granularity]:
    """``timestamp_granularities[]`` (OpenAI's SDK) and ``timestamp_granularities`` (LiteLLM, curl) as one."""
    return frozenset(g for values in sent for g in values or ())


def asr_router() -> APIRouter:
    router = APIRouter(tags=["asr"])

    @router.post("/asr", response_model=AsrResponse, responses=UPLOAD_ERRORS)
    async def asr(
        serving: UploadServingDep,
        audio: Annotated[UploadFile, File(description="WAV, MP3, FLAC, OGG, M4A or WebM",
                                          json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str | None, Form(description="default (or empty): the first ASR model"), OptionalText] = None,
        language: Annotated[str | None, Form(pattern=LANGUAGE, description="ISO-639-1, e.g. 'en'"),
                            OptionalLanguage] = None,
        word_timestamps: Annotated[bool, Form(description="each segment's words with their times")] = False,
    ) -> AsrResponse:
        """Transcribe an uploaded audio file."""
        name, t = await transcribe_upload(serving, audio, model, TranscriptionRequest(
            language=language, word_timestamps=word_timestamps))
        return asr_response(name, t)

    @router.post("/v1/audio/transcriptions", response_model=TranscriptionJson | TranscriptionVerbose,
                 responses={**UPLOAD_ERRORS, 200: {"content": {"text/plain": {}, "text/event-stream": {}}}},
                 tags=["openai"])
    async def transcriptions(
        serving: UploadServingDep,
        file: Annotated[UploadFile, File(json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str, Form(description="a configured ASR model, or 'whisper-1' for the default")] = "whisper-1",
        language: Annotated[str | None, Form(pattern=LANGUAGE), OptionalLanguage] = None,
        prompt: Annotated[str | None, Form(max_length=2000),
                          WithJsonSchema({"type": "string", "maxLength": 2000})] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
        stream: Annotated[bool, Form(description="server-sent transcript.text.delta events, then "
                                                 "transcript.text.done (response_format json or text)")] = False,
        timestamp_granularities_list: Annotated[
            TimestampGranularities, Form(alias="timestamp_granularities[]",
                                         description="'segment' and/or 'word' (response_format verbose_json)")] = None,
        timestamp_granularities: Annotated[
            TimestampGranularities, Form(description="the same, as LiteLLM and curl users send it")] = None,
    ) -> Any:
        """OpenAI-compatible transcription, as the ``openai`` SDK's ``audio.transcriptions.create``."""
        wanted = granularities(timestamp_granularities_list, timestamp_granularities)
        if "word" in wanted and response_format != "verbose_json":
            raise BadRequest("word timestamps come in response_format 'verbose_json'; ask for it",
                             param="timestamp_granularities")
        request = TranscriptionRequest(language=language, prompt=prompt, temperature=temperature,
                                       word_timestamps="word" in wanted)
        if stream:
            if response_format not in ("json", "text"):
                raise BadRequest(f"stream sends text events: use response_format 'json' or 'text', not "
                                 f"'{response_format}' (or leave stream out)", param="stream")
            return await stream_upload(serving, file, model, replace(request, streamed=True))
        _, t = await transcribe_upload(serving, file, model, request)
        return transcription_response(t, response_format, wanted)

    @router.post("/v1/audio/translations", response_model=TranscriptionJson | TranscriptionVerbose,
                 responses={**UPLOAD_ERRORS, 200: {"content": {"text/plain": {}}}}, tags=["openai"])
    async def translations(
        serving: UploadServingDep,
        file: Annotated[UploadFile, File(json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str, Form(description="a multilingual ASR model; 'whisper-1': the default")] = "whisper-1",
        prompt: Annotated[str | None, Form(max_length=2000),
                          WithJsonSchema({"type": "string", "maxLength": 2000})] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
    ) -> Any:
        """Speech in any language the model knows, as English text (OpenAI's ``audio.translations.create``)."""
        _, t = await transcribe_upload(serving, file, model, TranscriptionRequest(
            prompt=prompt, temperature=temperature, task="translate"))
        return transcription_response(t, response_format, task="translate")

    return router
