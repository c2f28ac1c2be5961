#!/usr/bin/env bash
# Prints the CMake flags llama.cpp is built with on this CPU (CPUINFO: another cpuinfo file, for tests).
# Why: a default build uses -march=native, and on some VMs the CPU advertises AMX that the
# hypervisor does not let processes use, so the first llama_decode segfaults in
# ggml_backend_amx_mul_mat. So: GGML_NATIVE=OFF, never AMX, and AVX-512 (with VNNI / BF16) only
# when this CPU has it — on a CPU without AVX-512 such a build dies with an illegal instruction.
set -euo pipefail
have=$(grep -m1 '^flags' "${CPUINFO:-/proc/cpuinfo}" 2>/dev/null || true)
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if [[ " $have " == *" avx512f "* && " $have " == *" avx512bw "* && " $have " == *" avx512vl "* ]]; then
    flags+=" -DGGML_AVX512=ON"
    [[ " $have " == *" avx512_vnni "* ]] && flags+=" -DGGML_AVX512_VNNI=ON"
    [[ " $have " == *" avx512_bf16 "* ]] && flags+=" -DGGML_AVX512_BF16=ON"
fi
echo "$flags -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
