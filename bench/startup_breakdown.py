"""Where cold-start time goes, step by step, in fresh processes (median of --runs).

    python bench/startup_breakdown.py [--runs 5]

Each run is a new interpreter that performs the server's start-up steps one after another and
timestamps them; nothing overlaps here (the real server overlaps loading with imports), so the
steps add up to the sequential cost. Writes bench/results/startup_breakdown.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GGUF_STEPS = r"""
import time, json
t = [("start", time.perf_counter())]
def mark(name): t.append((name, time.perf_counter()))
from gguf_model_server.settings import GGUFServerSettings; mark("import settings (pydantic-settings)")
s = GGUFServerSettings.load(); mark("validate config")
from gguf_model_server.loading import build_registry; mark("import loading core")
import llama_cpp; mark("import llama_cpp")
import fastapi, uvicorn; mark("import fastapi + uvicorn")
from gguf_model_server.app import create_app
app = create_app(s, build_registry(s)); mark("import routes, build app")
from gguf_model_server.llama_backend import make_loader
from serving_core.compute import ComputeSlots
m = make_loader(None, ComputeSlots(1), 32)(s.models[0]); mark("load model (Gemma 3 270M)")
m.warmup(); mark("first 1-token inference")
m.warmup(); mark("second 1-token inference")
print(json.dumps([(n, b - a) for (_, a), (n, b) in zip(t, t[1:])]))
"""

ASR_STEPS = r"""
import time, json
t = [("start", time.perf_counter())]
def mark(name): t.append((name, time.perf_counter()))
from asr_ocr_model_server.settings import AsrOcrServerSettings; mark("import settings")
s = AsrOcrServerSettings.load(); mark("validate config")
from asr_ocr_model_server.backends import build_registry, make_loader; mark("import loading core")
import faster_whisper; mark("import faster_whisper")
import rapidocr; mark("import rapidocr")
import fastapi, uvicorn; mark("import fastapi + uvicorn")
from asr_ocr_model_server.app import create_app
app = create_app(s, build_registry(s)); mark("import routes, build app")
load = make_loader(None)
asr = load(s.models[0]); mark("load whisper-tiny.en")
ocr = load(s.models[1]); mark("load rapidocr")
import numpy as np
from PIL import Image
from asr_ocr_model_server.asr.transcript import TranscriptionRequest
asr.transcribe(np.zeros(16000, np.float32), TranscriptionRequest()); mark("first /asr call (1 s)")
ocr.read(Image.new("RGB", (64, 32), "white")); mark("first /ocr call")
print(json.dumps([(n, b - a) for (_, a), (n, b) in zip(t, t[1:])]))
"""


def run(code: str) -> tuple[float, list[tuple[str, float]]]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    total = time.perf_counter() - t0
    return total, json.loads(out.stdout.strip().splitlines()[-1])


def interpreter_start() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    report: dict[str, object] = {"runs": args.runs}
    for label, code in (("gguf", GGUF_STEPS), ("asr_ocr", ASR_STEPS)):
        starts, totals, steps = [], [], {}
        for _ in range(args.runs):  # interleave the bare interpreter start with the full sequence
            starts.append(interpreter_start())
            total, marks = run(code)
            totals.append(total)
            for name, sec in marks:
                steps.setdefault(name, []).append(sec)
        rows = [("python interpreter start (python -c pass)", statistics.median(starts))]
        rows += [(name, statistics.median(v)) for name, v in steps.items()]
        report[label] = {"steps": rows, "process_total_median": statistics.median(totals)}
        print(f"\n{label}: median of {args.runs} fresh processes (seconds)")
        for name, sec in rows:
            print(f"  {sec:7.3f}  {name}")
        print(f"  {statistics.median(totals):7.3f}  whole process (spawn to exit)")
    out = REPO / "bench" / "results" / "startup_breakdown.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
