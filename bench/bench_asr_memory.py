"""ASR memory and what bounding it costs (issue 17, section 2).

``python bench/bench_asr_memory.py [--runs 5] [--parts growth,features,arenas]``

1. Peak RSS growth of the ASR/OCR server (defaults, warm) over idle for one POST /asr of silent
   FLACs of 1, 5, 15 and 29 minutes (``VmHWM`` reset through /proc/PID/clear_refs before each),
   and the growth per minute of audio (least-squares slope). Report only; the tests assert ≤ 300 MB.
2. Time of the log-mel features of 29 min of audio: the windowed extractor ÷ faster-whisper's own
   (in this process, interleaved); and (part ``transcribe``, not in the default set: ~1 min per
   round) the whole transcription of ~4 min of espeak-ng speech with each. Report only.
3. The malloc arena cap (``serving_core/memory.py``, 2 per core) ÷ glibc's default (8 per core, set
   through MALLOC_ARENA_MAX, which the cap leaves alone): wall time of POST /asr on a ~5 s espeak-ng
   WAV and POST /ocr on a 2-line PNG, two servers side by side, calls alternating. Target ≤ 1.05.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
import soundfile as sf

sys.path.insert(0, str(common.REPO / "tests"))

from media import read_wav_float32, render_text_image, speak_wav

MINUTES = (1, 5, 15, 29)
SPEECH = "The quick brown fox jumps over the lazy dog while the server measures its own memory."
LINES = ["Benchmarks report ratios", "measured in the same run"]
MiB = 1024 * 1024


def silent_flac(minutes: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(16_000 * 60 * minutes), np.int16), 16_000, format="FLAC")
    return buf.getvalue()


def peak_growth(srv: Any, data: bytes) -> float:
    """MiB of peak RSS above the idle RSS for one /asr call on ``data``."""
    idle = common.read_proc_status(srv.pid)["VmRSS"]
    Path(f"/proc/{srv.pid}/clear_refs").write_text("5")
    resp = srv.client.post("/asr", files={"audio": ("a.flac", data)}, timeout=900)
    if resp.status_code != 200:
        raise RuntimeError(f"/asr answered {resp.status_code}: {resp.text[:300]}")
    return (common.read_proc_status(srv.pid)["VmHWM"] - idle) / 1024


def timed_post(srv: Any, route: str, field: str, path: Path) -> float:
    with path.open("rb") as fh:
        t0 = time.perf_counter()
        resp = srv.client.post(route, files={field: (path.name, fh)})
        seconds = time.perf_counter() - t0
    if resp.status_code != 200:
        raise RuntimeError(f"{route} answered {resp.status_code}: {resp.text[:300]}")
    return seconds


def features_seconds(extractor: Any, audio: np.ndarray) -> float:
    t0 = time.perf_counter()
    extractor(audio)
    return time.perf_counter() - t0


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--parts", default="growth,features,arenas", help="which of the three to run (comma-separated)")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    cmd = common.asr_ocr_cmd
    extra: dict[str, Any] = {}
    comps: list[common.Comparison] = []
    if "growth" in parts:
        extra.update(growth_per_minute(cmd, args))
    if "features" in parts:
        comps.append(features_time(args))
    if "transcribe" in parts:
        comps.append(transcribe_time(args))
    if "arenas" in parts:
        comps += arena_cap(cmd, args)
    common.report("bench_asr_memory", args, comps, extra=extra)


def growth_per_minute(cmd: Any, args: Any) -> dict[str, Any]:
    """1. peak growth per minute of audio."""
    with common.running(cmd) as srv:
        srv.wait_ready()
        peak_growth(srv, silent_flac(0.5))  # warm
        growth = {m: [] for m in MINUTES}
        for _ in range(max(1, args.runs // 2)):
            for m in MINUTES:
                growth[m].append(peak_growth(srv, silent_flac(m)))
                print(f"  {m:>2} min: peak +{growth[m][-1]:.0f} MiB", flush=True)
    medians = {m: statistics.median(v) for m, v in growth.items()}
    slope, intercept = np.polyfit(list(medians), list(medians.values()), 1)
    return {"peak_growth_mib_by_minutes (median)": {str(m): round(v) for m, v in medians.items()},
            "peak_growth_fit": f"{intercept:.0f} MiB + {slope:.2f} MiB per minute of audio"}


def features_time(args: Any) -> common.Comparison:
    """2. the windowed features against faster-whisper's own."""
    from faster_whisper.feature_extractor import FeatureExtractor

    from asr_ocr_model_server.asr.faster_whisper_features import WindowedFeatureExtractor

    audio = (np.random.default_rng(0).standard_normal(16_000 * 60 * 29) * 0.1).astype(np.float32)
    res = common.interleave(args.runs, args.warmup, {
        "own features (29 min)": lambda: features_seconds(FeatureExtractor(), audio),
        "windowed features (29 min)": lambda: features_seconds(WindowedFeatureExtractor(), audio),
    })
    return common.compare(res, "own features (29 min)", "windowed features (29 min)", None, "features time")


def transcribe_time(args: Any) -> common.Comparison:
    """2b. a whole transcription with the windowed features against one with faster-whisper's own."""
    from faster_whisper.feature_extractor import FeatureExtractor

    from asr_ocr_model_server.asr.faster_whisper_backend import load
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest
    from serving_core.specs import ModelSpec

    with tempfile.TemporaryDirectory() as tmp:
        sentences = " ".join(f"On day {i}, the {SPEECH.lower()}" for i in range(1, 21))
        audio = np.tile(read_wav_float32(speak_wav(sentences, Path(tmp) / "speech.wav")), 2)
    model = load(ModelSpec(name="w", backend="faster_whisper"), None)
    windowed, own = model.model.feature_extractor, FeatureExtractor(**model.model.feat_kwargs)

    def run(extractor: Any) -> float:
        model.model.feature_extractor = extractor
        t0 = time.perf_counter()
        model.transcribe(audio.copy(), TranscriptionRequest(temperature=0.0))
        return time.perf_counter() - t0

    label = f"transcription ({len(audio) / 16_000:.0f} s of speech)"
    res = common.interleave(args.runs, args.warmup, {f"own features, {label}": lambda: run(own),
                                                     f"windowed features, {label}": lambda: run(windowed)})
    return common.compare(res, f"own features, {label}", f"windowed features, {label}", None, "transcription")


def arena_cap(cmd: Any, args: Any) -> list[common.Comparison]:
    """3. the arena cap against glibc's default."""
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        wav = speak_wav(SPEECH, Path(tmp) / "speech.wav")
        png = render_text_image(LINES, Path(tmp) / "text.png")
        with common.running(cmd, {"MALLOC_ARENA_MAX": str(8 * cores)}) as default, common.running(cmd) as capped:
            default.wait_ready()
            capped.wait_ready()
            res = common.interleave(args.runs, args.warmup, {
                "glibc default arenas /asr": lambda: timed_post(default, "/asr", "audio", wav),
                "capped arenas /asr": lambda: timed_post(capped, "/asr", "audio", wav),
                "glibc default arenas /ocr": lambda: timed_post(default, "/ocr", "image", png),
                "capped arenas /ocr": lambda: timed_post(capped, "/ocr", "image", png),
            }, pause=0.1)
    return [common.compare(res, f"glibc default arenas /{t}", f"capped arenas /{t}", 1.05, f"/{t} wall time")
            for t in ("asr", "ocr")]


if __name__ == "__main__":
    main()
