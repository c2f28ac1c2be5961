#!/usr/bin/env bash
# The main job: set up (if needed), then serve both servers on their embedded default models
# (GGUF on :8001, ASR/OCR on :8002) until Ctrl-C, which stops both. Each output line is prefixed
# with the server's name; if either server stops (e.g. its port is taken), the other is stopped
# too and the reason is the last line printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# What serving the default models needs (no torch, no test tools; `make test` installs those).
PYTHON="$PY" EXTRAS="${EXTRAS:-gguf,asr,ocr}" bash scripts/install.sh

LOGS=$(mktemp -d)
prefix() {  # prefix every line with the server's name, keeping a copy for the final message
    local name=$1
    trap '' INT  # Ctrl-C is for the servers: keep printing until they have said their last line
    while IFS= read -r line; do
        printf '%-8s| %s\n' "$name" "$line"
        printf '%s\n' "$line" >>"$LOGS/$name"
    done
}

# Each server writes into its own prefixer; the prefixers' PIDs are kept so that the script waits
# until they have printed a stopped server's last line, however slow a busy machine makes them.
exec {gguf_out}> >(prefix gguf)
GGUF_PREFIX=$!
exec {asr_out}> >(prefix asr-ocr)
ASR_PREFIX=$!
"$PY" -m gguf_model_server >&"$gguf_out" 2>&1 {gguf_out}>&- {asr_out}>&- &
GGUF=$!
"$PY" -m asr_ocr_model_server >&"$asr_out" 2>&1 {gguf_out}>&- {asr_out}>&- &
ASR=$!
exec {gguf_out}>&- {asr_out}>&-  # the servers hold the only write ends: a prefixer ends with its server

printed() {  # every line the servers wrote has been printed
    wait "$GGUF_PREFIX" "$ASR_PREFIX" 2>/dev/null || true
}

stop_all() {
    kill -TERM "$GGUF" "$ASR" 2>/dev/null || true
    wait "$GGUF" "$ASR" 2>/dev/null || true
}
# Ctrl-C reaches both servers directly (same process group); wait for them to finish cleanly.
trap 'wait "$GGUF" "$ASR" 2>/dev/null || true; printed; rm -rf "$LOGS"; echo "stopped (Ctrl-C): both servers drained and exited"; exit 130' INT
trap 'stop_all; rm -rf "$LOGS"; exit 143' TERM

code=0
wait -n "$GGUF" "$ASR" || code=$?
if (( code == 130 )); then
    # A server stopped by Ctrl-C: the other got the same signal and is draining. Another signal
    # now would be its "stop at once", cutting the requests the drain promised to finish; wait.
    wait "$GGUF" "$ASR" 2>/dev/null || true
    printed
    rm -rf "$LOGS"
    echo "stopped (Ctrl-C): both servers drained and exited"
    exit 130
fi
stop_all
printed
for name in gguf asr-ocr; do
    # A server that could not start ends its output with one plain line saying why (exit code 3).
    if [[ -f "$LOGS/$name" ]] && tail -n1 "$LOGS/$name" | grep -q "could not start"; then
        echo
        tail -n1 "$LOGS/$name"
        code=3
    fi
done
rm -rf "$LOGS"
exit "$code"
