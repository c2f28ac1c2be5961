"""ASR/OCR server on its defaults, warm: wall time of POST /asr on a ~5 s espeak-ng WAV and of
POST /ocr on a rendered 2-line text PNG (measured by the client), divided by the direct in-process
backend call on the same file (open + decode + transcribe/read, same default models and options)
in a separate long-lived process. Calls alternate server/direct. Target ≤ 1.1 for each.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(common.REPO / "tests"))
from media import render_text_image, speak_wav

SPEECH = "The quick brown fox jumps over the lazy dog while the server measures its own overhead."
LINES = ["Benchmarks report ratios", "measured in the same run"]


def post(srv: Any, route: str, field: str, path: Path, mime: str) -> dict[str, Any]:
    with path.open("rb") as fh:
        t0 = time.perf_counter()
        resp = srv.client.post(route, files={field: (path.name, fh, mime)})
        seconds = time.perf_counter() - t0
    if resp.status_code != 200:
        raise RuntimeError(f"{route} answered {resp.status_code}: {resp.text[:300]}")
    body = resp.json()
    return {"value": seconds, "text": body.get("transcript", body.get("extracted_text"))}


def main() -> None:
    args = common.parse_args(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        wav = speak_wav(SPEECH, Path(tmp) / "speech.wav")
        png = render_text_image(LINES, Path(tmp) / "text.png")
        with common.Worker("asr-ocr-worker") as direct, common.running(common.asr_ocr_cmd) as srv:
            srv.wait_ready()
            res = common.interleave(args.runs, args.warmup, {
                "direct asr": lambda: direct.call(task="asr", path=str(wav)),
                "server /asr": lambda: post(srv, "/asr", "audio", wav, "audio/wav"),
                "direct ocr": lambda: direct.call(task="ocr", path=str(png)),
                "server /ocr": lambda: post(srv, "/ocr", "image", png, "image/png"),
            }, pause=0.1)
        audio_seconds = wav.stat().st_size / 32000  # 16 kHz, 16-bit mono
    tasks = ("asr", "ocr")
    comps = [common.compare(res, f"direct {t}", f"server /{t}", 1.1, f"{t} wall time") for t in tasks]
    texts = {t: f"{res[f'direct {t}'][0]['text']} | {res[f'server /{t}'][0]['text']}" for t in tasks}
    common.report("bench_asr_ocr_overhead", args, comps,
                  extra={"audio_seconds": round(audio_seconds, 2), "asr_text (direct | server)": texts["asr"],
                         "ocr_text (direct | server)": texts["ocr"]})


if __name__ == "__main__":
    main()
