"""Word timestamps, streamed transcriptions, translations, languages, and bounded decoding of silence
and noise: through the official openai SDK and plain HTTP against a real server (the embedded
Whisper tiny.en, and a tiny multilingual openai-whisper model the tests build), and in-process on
the embedded model where the property is the decoder's work."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from conftest import assert_error, write_config
from media import read_wav_float32, speak_wav, story, varied_sentences, wav_bytes, word_error_rate
from server_process import REPO
from tiny_asr_ocr_models import TINY_WHISPER_TEXT, write_tiny_openai_whisper

pytestmark = pytest.mark.slow

SPEECH_WAV = REPO / "examples" / "speech.wav"
SPOKEN = "Please send the report to the office before noon on Friday."
EPS = 0.02  # seconds: word and segment times are rounded


@pytest.fixture(scope="module")
def server(module_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("speech-models")
    write_tiny_openai_whisper(d / "tiny-ml.pt", multilingual_task="translate")
    cfg = write_config(d / "asr.yaml", model_dir=str(d), models=[
        {"name": "whisper-tiny.en", "backend": "faster_whisper"},
        {"name": "tiny-ml", "backend": "openai_whisper", "path": "tiny-ml.pt"},
    ])
    srv = module_server("asr_ocr_model_server", config=cfg)
    srv.wait_settled(timeout=240)
    return srv


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)


def test_word_timestamps_through_the_sdk(client) -> None:
    with SPEECH_WAV.open("rb") as fh:
        out = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])
    assert out.words and out.segments
    starts = [w.start for w in out.words]
    assert starts == sorted(starts)
    for w in out.words:
        assert w.start <= w.end + EPS
        assert any(s.start - EPS <= w.start and w.end <= s.end + EPS for s in out.segments), w
    assert word_error_rate(SPOKEN, " ".join(w.word for w in out.words)) < 0.2
    assert " ".join(w.word for w in out.words).split() == out.text.split()


def test_word_granularity_as_litellm_sends_it_and_alone(server) -> None:
    # ``timestamp_granularities`` without the brackets, and only words: no segments then, as OpenAI.
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"timestamp_granularities": "word", "response_format": "verbose_json"}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segments"] is None and len(body["words"]) >= 8
    assert set(body["words"][0]) == {"word", "start", "end"}
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"timestamp_granularities[]": "word"})
    assert "verbose_json" in assert_error(r, 400)


def test_asr_words_per_segment_only_when_asked(server) -> None:
    r = server.client.post("/asr", files={"audio": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"word_timestamps": "true"}, timeout=300)
    assert r.status_code == 200, r.text
    segments = r.json()["segments"]
    assert segments and all(s["words"] for s in segments)
    for s in segments:
        assert " ".join(w["word"].strip() for w in s["words"]) == s["text"]
        assert all(0 <= w["probability"] <= 1 for w in s["words"])
    plain = server.client.post("/asr", files={"audio": ("s.wav", SPEECH_WAV.read_bytes())}, timeout=300).json()
    assert all(s["words"] is None for s in plain["segments"])


def test_streamed_transcription_through_the_sdk(client, tmp_path) -> None:
    wav = speak_wav(varied_sentences(4), tmp_path / "long.wav")
    with wav.open("rb") as fh:
        whole = client.audio.transcriptions.create(model="whisper-1", file=fh).text
    with wav.open("rb") as fh:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=fh, stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    assert len(kinds) >= 3  # several segments, each its own delta
    deltas = "".join(e.delta for e in events[:-1])
    done = events[-1]
    assert deltas == done.text == whole
    assert done.usage is not None and done.usage.output_tokens > 0 and done.usage.input_tokens > 0


def test_stream_refusals_are_http_errors_not_events(server) -> None:
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")},
                           data={"stream": "true"})
    assert_error(r, 422)
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"stream": "true", "response_format": "srt"})
    assert "response_format" in assert_error(r, 400)
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"stream": "true", "model": "no-such-model"})
    assert_error(r, 404)


def test_translation_needs_a_multilingual_model(client) -> None:
    with SPEECH_WAV.open("rb") as fh, pytest.raises(openai.BadRequestError, match="English-only"):
        client.audio.translations.create(model="whisper-tiny.en", file=fh)
    with SPEECH_WAV.open("rb") as fh:
        out = client.audio.translations.create(model="tiny-ml", file=fh)
    assert out.text == TINY_WHISPER_TEXT.strip()
    with SPEECH_WAV.open("rb") as fh:
        verbose = client.audio.translations.create(model="tiny-ml", file=fh, response_format="verbose_json")
    assert verbose.language == "english" and verbose.text == out.text and verbose.segments


def test_a_language_the_model_cannot_do_is_400(server, client) -> None:
    with SPEECH_WAV.open("rb") as fh, pytest.raises(openai.BadRequestError, match="English-only"):
        client.audio.transcriptions.create(model="whisper-tiny.en", file=fh, language="de")
    r = server.client.post("/asr", files={"audio": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"model": "tiny-ml", "language": "xx"})
    assert "'xx' is not one this model knows" in assert_error(r, 400)
    r = server.client.post("/asr", files={"audio": ("s.wav", SPEECH_WAV.read_bytes())},
                           data={"model": "tiny-ml", "language": "en"})
    assert r.status_code == 200 and r.json()["language"] == "en"  # (the tiny model only knows how to translate)


@pytest.mark.parametrize("kind", ["silence-1s", "silence-60s", "noise-10s"])
def test_silence_and_noise_answer_without_running_away(server, kind) -> None:
    rng = np.random.default_rng(0)
    samples = {"silence-1s": np.zeros(16_000), "silence-60s": np.zeros(60 * 16_000),
               "noise-10s": rng.normal(0, 0.3, 10 * 16_000)}[kind]
    # Generous: unbounded decoding of noise took minutes on Whisper base; bounded it is about a window.
    r = server.client.post("/asr", files={"audio": ("x.wav", wav_bytes(samples))}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["transcript"] == ""  # VAD hears no speech: nothing is decoded, nothing made up
    assert server.client.get("/health").status_code == 200


# -- in process: what the decoder is asked to do ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_en() -> Any:
    from asr_ocr_model_server.asr.faster_whisper_backend import load
    from serving_core.specs import ModelSpec

    return load(ModelSpec(name="w", backend="faster_whisper"), None)


class CountingGenerate:
    """Records each CTranslate2 generate call's new-token budget (max_length minus the prompt)."""

    def __init__(self, model: Any) -> None:
        self.whisper = model.model.model  # faster-whisper's WhisperModel.model (our stoppable wrapper)
        self.budgets: list[int] = []
        self.batches: list[int] = []
        self._generate = self.whisper.generate

    def __enter__(self) -> CountingGenerate:
        def generate(features: Any, prompts: list[list[int]], **kwargs: Any) -> Any:
            self.budgets.append(kwargs["max_length"] - len(prompts[0]))
            self.batches.append(len(prompts))
            return self._generate(features, prompts, **kwargs)

        self.whisper.generate = generate
        return self

    def __exit__(self, *exc: object) -> None:
        del self.whisper.generate


def test_decoding_noise_is_bounded_in_tokens_and_retries(tiny_en) -> None:
    from asr_ocr_model_server.asr.decoding import new_token_bound
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest

    noise = np.random.default_rng(1).normal(0, 0.3, 16_000).astype(np.float32)
    opts = tiny_en.opts
    tiny_en.opts = opts.model_copy(update={"vad_filter": False})  # decoded, not skipped by VAD
    try:
        with CountingGenerate(tiny_en) as calls:
            tiny_en.transcribe(noise, TranscriptionRequest())
    finally:
        tiny_en.opts = opts
    assert calls.budgets, "the window was decoded"
    assert max(calls.budgets) <= new_token_bound(1.0, tiny_en.opts) < 40
    assert len(calls.budgets) <= len(tiny_en.opts.temperature_fallback)


@pytest.mark.parametrize("seconds", [1, 90])
def test_silence_decodes_nothing(tiny_en, seconds) -> None:
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest

    with CountingGenerate(tiny_en) as calls:
        out = tiny_en.transcribe(np.zeros(seconds * 16_000, np.float32), TranscriptionRequest())
    assert out.text == "" and calls.budgets == []  # VAD heard no speech: no window was decoded


def test_segments_come_before_the_file_is_decoded(tiny_en, tmp_path: Path) -> None:
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest

    audio = read_wav_float32(speak_wav(varied_sentences(16), tmp_path / "s.wav"))
    assert len(audio) > 16_000 * 40  # more than one window
    with CountingGenerate(tiny_en) as calls:
        stream = tiny_en.stream(audio, TranscriptionRequest())
        next(stream.segments)
        after_first = len(calls.budgets)
        rest = list(stream.segments)
    assert rest and after_first < len(calls.budgets)


def test_long_audio_is_decoded_in_batches_as_accurately_as_in_sequence(tiny_en, tmp_path: Path) -> None:
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest

    text = story(40)
    audio = read_wav_float32(speak_wav(text, tmp_path / "long.wav"))
    assert len(audio) / 16_000 >= tiny_en.opts.batch_min_seconds
    with CountingGenerate(tiny_en) as batched_calls:
        batched = tiny_en.transcribe(audio.copy(), TranscriptionRequest())
    opts = tiny_en.opts
    tiny_en.opts = opts.model_copy(update={"batch_min_seconds": None})
    try:
        with CountingGenerate(tiny_en) as sequential_calls:
            sequential = tiny_en.transcribe(audio.copy(), TranscriptionRequest())
    finally:
        tiny_en.opts = opts
    assert max(batched_calls.batches) > 1 and max(sequential_calls.batches) == 1
    assert len(batched_calls.batches) < len(sequential_calls.batches)
    assert word_error_rate(text, batched.text) <= word_error_rate(text, sequential.text) + 0.01
    starts = [s.start for s in batched.segments]
    assert starts == sorted(starts) and batched.segments[-1].end <= len(audio) / 16_000 + 0.5


def test_a_streamed_request_is_decoded_window_by_window_from_a_short_first_clip(tiny_en, tmp_path: Path) -> None:
    """Never in batches (their segments all end together), and the first clip short: early words."""
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest

    audio = read_wav_float32(speak_wav(story(30), tmp_path / "s.wav"))
    assert len(audio) / 16_000 >= tiny_en.opts.batch_min_seconds
    with CountingGenerate(tiny_en) as calls:
        stream = tiny_en.stream(audio, TranscriptionRequest(streamed=True))
        # What the first decode gave: the segments that came before a second one ran.
        first_window = [s for s in stream.segments if len(calls.budgets) == 1]
    assert set(calls.batches) == {1} and len(calls.budgets) > 2
    assert first_window and max(s.end for s in first_window) <= 10.5


def test_concurrent_requests_share_batched_calls_and_get_their_own_transcripts(tiny_en, tmp_path: Path) -> None:
    """Each transcription runs its own decoding; only the CTranslate2 calls are shared (a batch row per
    request), so each gets exactly the text it gets alone."""
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest

    clips = [read_wav_float32(speak_wav(varied_sentences(2) + f" Number {i}.", tmp_path / f"c{i}.wav"))
             for i in range(4)]
    alone = [tiny_en.transcribe(c.copy(), TranscriptionRequest()).text for c in clips]
    shared = tiny_en.model.model  # the wrapper faster-whisper calls; its _model is CTranslate2's

    class Whisper:
        """CTranslate2's model, recording the batch of each generate; its first encode waits until the
        other three requests queue behind it (as they do whenever requests overlap: a test cannot
        count on timing)."""

        def __init__(self, model: Any) -> None:
            self.model, self.held, self.generated = model, False, []

        def encode(self, *args: Any, **kwargs: Any) -> Any:
            if not self.held:
                self.held = True
                deadline = time.monotonic() + 60
                while len(shared.calls._pending) < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
            return self.model.encode(*args, **kwargs)

        def generate(self, features: Any, prompts: list[list[int]], **kwargs: Any) -> Any:
            self.generated.append(len(prompts))
            return self.model.generate(features, prompts, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.model, name)

    recording = shared._model = Whisper(shared._model)
    try:
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda c: tiny_en.transcribe(c.copy(), TranscriptionRequest()).text, clips))
    finally:
        shared._model = recording.model
    assert together == alone and all(alone)
    assert max(recording.generated) > 1, "windows of different requests were generated in one call"
    assert len(recording.generated) < len(clips)


def test_http_client_reads_the_stream_incrementally(server, tmp_path) -> None:
    """Raw SSE: ``data:`` lines in OpenAI's shape, no ``[DONE]`` needed by the SDK but sent as OpenAI's
    other streams do."""
    wav = speak_wav(varied_sentences(2), tmp_path / "s.wav")
    with httpx.stream("POST", f"{server.url}/v1/audio/transcriptions", files={"file": ("s.wav", wav.read_bytes())},
                      data={"stream": "true"}, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]" and '"transcript.text.done"' in lines[-2]
