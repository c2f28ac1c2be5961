#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build llama-cpp-python and llama-server with CUDA, load the
# embedded GGUF models fully offloaded, check that /health reports every layer on the GPU, and run
# the engine benchmark against llama-server with the same offload (ratios, docs/BENCHMARKS.md).
# Without an NVIDIA GPU it says so and does nothing (exit 0): the tests need no GPU.
#   bash scripts/gpu_check.sh [--runs 5]
# Needs the CUDA toolkit (nvcc) for the build; LLAMA_CMAKE_ARGS overrides the flags (e.g. add
# -DCMAKE_CUDA_ARCHITECTURES=89). The CUDA builds are cached apart from the CPU ones (install.sh
# and build-llama-server.sh key their caches by the flags).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to check."
    echo "           GPU offload options are validated and passed through on CPU builds; see docs/OPERATIONS.md, 'GPUs'."
    exit 0
fi
if ! command -v nvcc >/dev/null; then
    echo "gpu_check: an NVIDIA GPU is present but the CUDA toolkit (nvcc) is not: install it to build llama.cpp with CUDA." >&2
    exit 1
fi
nvidia-smi -L
# This CPU's flags (as for the CPU build) plus the CUDA backend.
export LLAMA_CMAKE_ARGS=${LLAMA_CMAKE_ARGS:-"$(bash scripts/llama-flags.sh) -DGGML_CUDA=on"}
echo ">>> building llama-cpp-python and llama-server with: $LLAMA_CMAKE_ARGS"
bash scripts/install.sh
bash scripts/build-llama-server.sh >/dev/null

PY=.venv/bin/python
"$PY" - <<'PYEOF'
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, "bench")
import common

with tempfile.TemporaryDirectory() as tmp:
    cfg = Path(tmp) / "gpu.yaml"
    cfg.write_text(json.dumps({"models": [{"name": "gemma-3-270m", "backend": "llama_cpp", "path": str(common.GEMMA),
                                           "options": {"n_gpu_layers": -1}}]}))
    with common.running(common.gguf_cmd(cfg)) as srv:
        srv.wait_ready()
        placement = srv.client.get("/health").json()["models"]["gemma-3-270m"]["placement"]
        print("placement:", placement)
        if not placement["gpu_build"] or placement["gpu_layers"] != placement["layers"]:
            sys.exit("gpu_check: the model is not fully offloaded")
PYEOF
"$PY" bench/bench_engine_vs_llama_server.py --n-gpu-layers 99 "$@"
