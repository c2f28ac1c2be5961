"""Speech-to-text routes: ``POST /asr`` (kept from the original servers) and OpenAI's
``POST /v1/audio/transcriptions``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import WithJsonSchema

from asr_ocr_model_server.api.dependencies import UploadServingDep
from asr_ocr_model_server.api.transcription.protocol import AsrResponse, TranscriptionJson, TranscriptionVerbose
from asr_ocr_model_server.api.transcription.serving import (
    ResponseFormat,
    asr_response,
    transcribe_upload,
    transcription_response,
)
from asr_ocr_model_server.api.uploads import NON_EMPTY_FILE, UPLOAD_ERRORS, OptionalText
from serving_core.errors import BadRequest

LANGUAGE = r"^[a-z]{2,3}$"
OptionalLanguage = WithJsonSchema({"type": "string", "pattern": LANGUAGE})


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
    ) -> AsrResponse:
        """Transcribe an uploaded audio file."""
        name, t = await transcribe_upload(serving, audio, model, language)
        return asr_response(name, t)

    @router.post("/v1/audio/transcriptions", response_model=TranscriptionJson | TranscriptionVerbose,
                 responses={**UPLOAD_ERRORS, 200: {"content": {"text/plain": {}}}}, tags=["openai"])
    async def transcriptions(
        serving: UploadServingDep,
        file: Annotated[UploadFile, File(json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str, Form(description="a configured ASR model, or 'whisper-1' for the default")] = "whisper-1",
        language: Annotated[str | None, Form(pattern=LANGUAGE), OptionalLanguage] = None,
        prompt: Annotated[str | None, Form(max_length=2000),
                          WithJsonSchema({"type": "string", "maxLength": 2000})] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
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
        return transcription_response(t, response_format)

    return router
