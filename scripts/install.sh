#!/usr/bin/env bash
# One-time set-up into the current Python environment (idempotent; fast when already done).
# EXTRAS (default: everything) picks the pyproject extras, e.g. EXTRAS=asr,ocr for the ASR/OCR
# server alone, which then needs no llama-cpp-python build.
#   - builds llama-cpp-python (pinned in pyproject.toml) with CPU flags that work here,
#   - installs the project with its extras,
#   - assembles and verifies the embedded default GGUF model once, so servers never re-hash it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LLAMA_VERSION=0.3.36

# Why these flags: a default build uses -march=native, and on these VMs the CPU advertises AMX
# that the hypervisor does not let processes use, so the first llama_decode segfaults in
# ggml_backend_amx_mul_mat. GGML_NATIVE=OFF with an explicit AVX2+AVX512 set avoids AMX and is
# proven on these machines. For images that must run on any x86-64-v3 CPU, set LLAMA_CMAKE_ARGS
# to the AVX2-only set (drop the AVX512 flags); Dockerfile.gguf does. That build was also made
# and run here: no crash, and Gemma 3 270M decoded at about the same speed (30-32 vs 31-37 tok/s,
# 3 runs each, noisy machine), so the AVX-512 default is kept only because it is the proven one.
DEFAULT_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
FLAGS=${LLAMA_CMAKE_ARGS:-$DEFAULT_FLAGS}
WANT="$LLAMA_VERSION $FLAGS"

marker() { "$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp")
print(pathlib.Path(spec.origin).parent / ".build-flags" if spec else "")
PY
}

EXTRAS=${EXTRAS:-gguf,asr,ocr,whisper,transformers,dev}
WITH_GGUF=0
[[ ",$EXTRAS," == *",gguf,"* ]] && WITH_GGUF=1

M=$(marker)
if [[ $WITH_GGUF == 1 && ( -z "$M" || ! -f "$M" || "$(cat "$M")" != "$WANT" ) ]]; then
    echo ">>> building llama-cpp-python $LLAMA_VERSION (5-7 minutes on 2 cores) with: $FLAGS"
    # --no-cache-dir: pip caches the wheel under the same key whatever CMAKE_ARGS were, so a
    # cached native build would be reused and crash.
    CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        "$PY" -m pip install --no-cache-dir --force-reinstall "llama-cpp-python==$LLAMA_VERSION"
    M=$(marker)
    echo "$WANT" > "$M"
fi

"$PY" -m pip install -q -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",whisper,"* ]]; then
    # --no-deps: see the `whisper` extra in pyproject.toml (skips the GPU-only triton).
    "$PY" -m pip install -q --no-deps "openai-whisper==20250625"
fi
if [[ $WITH_GGUF == 1 ]]; then
    echo ">>> default model: $("$PY" -m gguf_model_server.default_model)"
fi
