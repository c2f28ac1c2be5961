#!/usr/bin/env bash
# The main job: set up (if needed), then serve the embedded default models until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/install.sh
exec "$PY" -m gguf_model_server "$@"
