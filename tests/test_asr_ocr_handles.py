"""The ASR/OCR registry's handles are typed as either protocol; the routes narrow them by task."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from asr_ocr_model_server.asr.transcript import SegmentStream, Transcript, TranscriptionRequest, collect
from asr_ocr_model_server.backends import as_asr, as_ocr
from asr_ocr_model_server.ocr.lines import TextLine


class Speech:
    def stream(self, audio: np.ndarray, request: TranscriptionRequest) -> SegmentStream:
        return SegmentStream(language="en", duration=len(audio) / 16_000, segments=iter([]))

    def transcribe(self, audio: np.ndarray, request: TranscriptionRequest) -> Transcript:
        return collect(self.stream(audio, request))

    @property
    def multilingual(self) -> bool:
        return False

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def warmup(self) -> None:
        pass


class Reader:
    def read(self, image: Image.Image) -> list[TextLine]:
        return [TextLine(text="hi", confidence=1.0, box=None)]

    def warmup(self) -> None:
        pass


def test_each_handle_narrows_to_its_own_task_only() -> None:
    speech, reader = Speech(), Reader()
    assert as_asr(speech) is speech
    assert as_ocr(reader) is reader
    with pytest.raises(TypeError, match="Reader is not a speech-to-text model"):
        as_asr(reader)
    with pytest.raises(TypeError, match="Speech is not an OCR model"):
        as_ocr(speech)
