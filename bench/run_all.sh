#!/usr/bin/env bash
# Run all ten benchmarks in sequence. Extra arguments (e.g. --runs 5) go to every script.
# Results are appended to bench/results/<name>.json. Stops at the first failing benchmark.
set -euo pipefail
cd "$(dirname "$0")"
for name in \
    bench_gguf_vs_floor \
    bench_gguf_vs_llama_server \
    bench_parallel_vs_sequential \
    bench_asr_vs_floor \
    bench_generate_throughput \
    bench_ttft \
    bench_concurrency \
    bench_asr_ocr_overhead \
    bench_rss \
    bench_engine_vs_llama_server; do
    echo "### $name $*"
    python "$name.py" "$@"
done
