"""The two servers as the tool sees them: how to start one, which files it reads, how to probe it."""

from __future__ import annotations

import io
import struct
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from coldstart.processes import Command, module_command


@dataclass
class ServerTarget:
    """One server to measure: spawned by the tool (``module``) or already running (``url``)."""

    key: str  # "gguf" | "asr_ocr"
    module: str
    config: Path | None = None
    port: int | None = None
    url: str | None = None
    env_prefix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self) -> Command:
        return module_command(self.module, self.config)


def gguf_target(config: Path | None, port: int | None, url: str | None) -> ServerTarget:
    return ServerTarget("gguf", "gguf_model_server", config, port, url, env_prefix="GGUF_")


def asr_ocr_target(config: Path | None, port: int | None, url: str | None) -> ServerTarget:
    return ServerTarget("asr_ocr", "asr_ocr_model_server", config, port, url, env_prefix="ASR_OCR_")


def model_files_by_model(target: ServerTarget) -> dict[str, list[Path]]:
    """Each configured model's weight files/directories (for eviction, bytes and MB/s)."""
    if target.key == "gguf":
        from gguf_model_server.model_files import model_file
        from gguf_model_server.settings import GGUFServerSettings

        gguf = GGUFServerSettings.load(target.config)
        return {s.name: [model_file(s, gguf.model_dir)] for s in gguf.models}
    from asr_ocr_model_server.backends import weight_paths
    from asr_ocr_model_server.settings import AsrOcrServerSettings

    settings = AsrOcrServerSettings.load(target.config)
    return {spec.name: weight_paths(spec, settings.model_dir) for spec in settings.models}


def model_files(target: ServerTarget) -> list[Path]:
    """The weight files/directories the target's configuration makes it read (for page-cache eviction)."""
    return list(dict.fromkeys(p for paths in model_files_by_model(target).values() for p in paths))


def size_of(paths: list[Path]) -> int:
    """Bytes of these files (directories: every file inside)."""
    from coldstart.page_cache import files_in

    return sum(f.stat().st_size for f in files_in(paths))


def silent_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A second of silence as WAV bytes: a first /asr call that runs the whole model once.

    Silence, not a tone: Whisper finds no speech and stops, where a tone makes it retry at every
    fallback temperature (3-4 s instead of 0.35 s) and would measure the probe, not the server.
    """
    frames = b"\x00\x00" * int(seconds * rate)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def white_png(width: int = 64, height: int = 32) -> bytes:
    """A small white greyscale PNG: enough for a first /ocr call."""
    raw = b"".join(b"\x00" + b"\xff" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def first_inference(client: httpx.Client, target: ServerTarget, models: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Run the tiny first requests a user would send; return each one's latency. Raises on a non-200."""
    probes: list[tuple[str, str, dict[str, Any]]] = []
    if target.key == "gguf":
        probes.append(("generate", "/generate", {"json": {"prompt": "Hello", "max_tokens": 1, "temperature": 0}}))
    else:
        from asr_ocr_model_server.backends import BACKENDS

        tasks = {BACKENDS[m["backend"]].task for m in models.values() if m.get("backend") in BACKENDS}
        if "asr" in tasks:
            probes.append(("asr", "/asr", {"files": {"audio": ("silence.wav", silent_wav(), "audio/wav")}}))
        if "ocr" in tasks:
            probes.append(("ocr", "/ocr", {"files": {"image": ("white.png", white_png(), "image/png")}}))
    return _timed(client, probes)


def first_request_per_model(client: httpx.Client, target: ServerTarget,
                            models: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each ready model's first request, by name: a 1-token ``/generate``, a second of silence, or a
    small white image (what a user's first call costs, one-time setup included)."""
    probes: list[tuple[str, str, dict[str, Any]]] = []
    if target.key == "gguf":
        for name, m in models.items():
            if m.get("state") == "ready":
                probes.append((name, "/generate",
                               {"json": {"model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}}))
    else:
        from asr_ocr_model_server.backends import BACKENDS

        for name, m in models.items():
            info = BACKENDS.get(str(m.get("backend")))
            if m.get("state") != "ready" or info is None:
                continue
            if info.task == "asr":
                probes.append((name, "/asr", {"files": {"audio": ("silence.wav", silent_wav(), "audio/wav")},
                                              "data": {"model": name}}))
            else:
                probes.append((name, "/ocr", {"files": {"image": ("white.png", white_png(), "image/png")},
                                              "data": {"model": name}}))
    return _timed(client, probes)


def _timed(client: httpx.Client, probes: list[tuple[str, str, dict[str, Any]]]) -> dict[str, float]:
    """Send each probe in turn; each one's latency. Raises on a non-200."""
    import time

    latencies: dict[str, float] = {}
    for name, route, kwargs in probes:
        t0 = time.perf_counter()
        r = client.post(route, **kwargs)
        if r.status_code != 200:
            raise RuntimeError(f"first {route} answered {r.status_code}: {r.text[:300]}")
        latencies[name] = time.perf_counter() - t0
    return latencies
