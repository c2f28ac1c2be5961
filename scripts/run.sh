#!/usr/bin/env bash
# The main job: set up (if needed), then serve both servers on their embedded default models
# (GGUF on :8001, ASR/OCR on :8002) until Ctrl-C, which stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/install.sh
"$PY" -m gguf_model_server &
GGUF=$!
"$PY" -m asr_ocr_model_server &
ASR=$!
trap 'kill $GGUF $ASR 2>/dev/null; wait' INT TERM EXIT
# Stop both when either exits (e.g. a port already in use).
wait -n $GGUF $ASR
