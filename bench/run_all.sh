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
    bench_asr_memory \
    bench_omp_wait \
    bench_engine_vs_llama_server \
    bench_engine_tasks \
    bench_api_families \
    bench_speech_documents \
    bench_sleep_wake \
    bench_read_ahead; do
    echo "### $name $*"
    python "$name.py" "$@"
done
# Rows 11-14 need the optional `fleet` model pack (python -m model_store install fleet, ~1.3 GB).
if python -c "import sys; sys.path.insert(0, '..'); import common; common.fleet_files()" >/dev/null 2>&1; then
    for name in bench_fleet_first_token bench_fleet_cold_start bench_fleet_mmap bench_fleet_repack; do
        echo "### $name $*"
        python "$name.py" "$@"
    done
else
    echo "### skipping rows 11-14: the fleet pack is not installed (python -m model_store install fleet)"
fi
