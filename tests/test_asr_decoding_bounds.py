"""The bounds every Whisper backend decodes under (asr/decoding.py) and their settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asr_ocr_model_server.asr.decoding import WINDOW_TOKEN_LIMIT, new_token_bound, temperatures, use_vad
from asr_ocr_model_server.backend_options import FasterWhisperOptions, OpenAIWhisperOptions


def test_short_audio_gets_a_small_token_budget_and_windows_whispers_own() -> None:
    opts = FasterWhisperOptions()
    one, ten = new_token_bound(1.0, opts), new_token_bound(10.0, opts)
    assert one < 40 < ten < WINDOW_TOKEN_LIMIT
    assert new_token_bound(30.0, opts) == new_token_bound(600.0, opts) == WINDOW_TOKEN_LIMIT
    assert new_token_bound(0.0, opts) > 0
    assert new_token_bound(1.0, FasterWhisperOptions(max_tokens_per_second=30)) > one


def test_temperatures_start_at_the_requested_one_and_only_rise() -> None:
    opts = OpenAIWhisperOptions()
    assert temperatures(None, opts) == (0.0, 0.4, 0.8)
    assert temperatures(0.0, opts) == (0.0, 0.4, 0.8)
    assert temperatures(0.5, opts) == (0.5, 0.8)
    assert temperatures(1.0, opts) == (1.0,)


def test_vad_by_default_only_beyond_one_window() -> None:
    assert not use_vad(29.0, FasterWhisperOptions()) and use_vad(31.0, FasterWhisperOptions())
    assert use_vad(1.0, FasterWhisperOptions(vad_filter=True))
    assert not use_vad(600.0, OpenAIWhisperOptions(vad_filter=False))


@pytest.mark.parametrize("schedule", [(), (0.4, 0.2), (0.0, 0.0), (0.0, 1.5), (0.0,) * 7])
def test_a_fallback_schedule_must_rise_within_0_and_1(schedule) -> None:
    with pytest.raises(ValidationError):
        FasterWhisperOptions(temperature_fallback=schedule)
