"""In-process baselines, each run in a fresh child process by the benchmarks (never by hand).

    inproc.py load-gguf PATH       import everything first, then time ONE GGUF load → {"seconds"}
    inproc.py load-asr-ocr NAME    same for one default ASR/OCR model (by its configured name)
    inproc.py llama-worker PATH    long-lived: Llama(PATH) once, then one create_completion per request line
    inproc.py asr-ocr-worker       long-lived: both default models, then decode + transcribe/read per line

Replies are one JSON object per line on the original stdout; anything a C library prints to
stdout goes to stderr instead, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any

# Backend → the library its load() imports lazily (pre-imported so a timed load excludes imports).
LIBRARY_OF = {"faster_whisper": "faster_whisper", "rapidocr": "rapidocr", "openai_whisper": "whisper",
              "transformers": "transformers"}


def protocol_out() -> Any:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def gguf_loader(path: str) -> tuple[Any, Any]:
    from gguf_model_server.llama_backend import import_llama, make_loader
    from serving_core.compute import ComputeSlots
    from serving_core.specs import ModelSpec

    import_llama()
    spec = ModelSpec(name="bench", backend="llama_cpp", path=path, options={"n_ctx": 2048})
    return make_loader(None, ComputeSlots(1), 32), spec


def asr_ocr_specs() -> dict[str, Any]:
    from asr_ocr_model_server.backends import BACKENDS, make_loader
    from asr_ocr_model_server.settings import AsrOcrServerSettings

    settings = AsrOcrServerSettings.load()
    for spec in settings.models:
        importlib.import_module(BACKENDS[spec.backend].module)
        importlib.import_module(LIBRARY_OF[spec.backend])
    return {"loader": make_loader(settings.model_dir), "settings": settings,
            "specs": {s.name: s for s in settings.models}}


def timed_load(loader: Any, spec: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    handle = loader(spec)
    seconds = time.perf_counter() - t0
    assert handle is not None
    return {"seconds": seconds, "model": spec.name}


def llama_worker(path: str, out: Any) -> None:
    import llama_cpp

    # The baseline: llama-cpp-python's own high-level API, one sequence.
    llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_threads=os.cpu_count() or 1, verbose=False)
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        t0 = time.perf_counter()
        res = llm.create_completion(prompt=req["prompt"], max_tokens=req["max_tokens"], temperature=0.0,
                                    seed=req["seed"])
        seconds = time.perf_counter() - t0
        n = res["usage"]["completion_tokens"]
        out.write(json.dumps({"seconds": seconds, "completion_tokens": n, "value": n / seconds,
                              "text": res["choices"][0]["text"]}) + "\n")


def asr_ocr_worker(out: Any) -> None:
    from asr_ocr_model_server.asr.transcript import TranscriptionRequest
    from asr_ocr_model_server.audio_input import decode_audio
    from asr_ocr_model_server.backends import task_of
    from asr_ocr_model_server.image_input import decode_image, limits_from

    ctx = asr_ocr_specs()
    handles = {task_of(s): ctx["loader"](s) for s in ctx["specs"].values()}
    limits = limits_from(ctx["settings"])
    out.write(json.dumps({"ready": True, "models": sorted(ctx["specs"])}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        t0 = time.perf_counter()
        with open(req["path"], "rb") as fh:
            if req["task"] == "asr":
                text = handles["asr"].transcribe(decode_audio(fh), TranscriptionRequest()).text
            else:
                text = " ".join(tl.text for tl in handles["ocr"].read(decode_image(fh, limits)))
        seconds = time.perf_counter() - t0
        out.write(json.dumps({"seconds": seconds, "value": seconds, "text": text}) + "\n")


def main(argv: list[str]) -> None:
    out = protocol_out()
    cmd, *rest = argv
    if cmd == "load-gguf":
        loader, spec = gguf_loader(rest[0])
        out.write(json.dumps(timed_load(loader, spec)) + "\n")
    elif cmd == "load-asr-ocr":
        ctx = asr_ocr_specs()
        out.write(json.dumps(timed_load(ctx["loader"], ctx["specs"][rest[0]])) + "\n")
    elif cmd == "llama-worker":
        llama_worker(rest[0], out)
    elif cmd == "asr-ocr-worker":
        asr_ocr_worker(out)
    else:
        raise SystemExit(f"unknown command {cmd!r}\n{__doc__}")
    out.flush()
    # Skip interpreter teardown (freeing models, joining library threads): it is not what we measure.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
