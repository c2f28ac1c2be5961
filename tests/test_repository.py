"""The repository stays usable: benchmark runs do not dirty the tree, the set-up check is instant."""

from __future__ import annotations

import subprocess

import pytest

from server_process import REPO


def test_new_benchmark_results_are_ignored_by_git() -> None:
    # Read .gitignore itself (no git needed): new runs go to bench/results/, which git ignores,
    # while the runs docs/BENCHMARKS.md records stay in the tracked bench/reference/.
    ignored = (REPO / ".gitignore").read_text().split()
    assert "bench/results/" in ignored
    assert (REPO / "bench" / "reference" / "bench_generate_throughput.json").is_file()
    assert "bench/reference/" in (REPO / "docs" / "BENCHMARKS.md").read_text()


@pytest.mark.parametrize(("cpu_flags", "has_avx512"), [
    ("fpu sse2 avx avx2 fma f16c amx_tile amx_int8 amx_bf16", False),  # AVX2 machine that advertises AMX
    ("fpu avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile", True),
    ("fpu avx avx2 fma f16c avx512f", False),  # AVX-512 foundation alone is not enough for ggml's kernels
])
def test_llama_cpp_flags_follow_the_cpu_and_never_enable_amx(tmp_path, cpu_flags, has_avx512) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {cpu_flags}\n")
    out = subprocess.run(["bash", "scripts/llama-flags.sh"], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "CPUINFO": str(cpuinfo)}, check=True).stdout.split()
    assert "-DGGML_NATIVE=OFF" in out and "-DGGML_AVX2=ON" in out
    assert ("-DGGML_AVX512=ON" in out) is has_avx512
    assert ("-DGGML_AVX512_VNNI=ON" in out) is has_avx512
    assert all(flag.endswith("=OFF") for flag in out if "AMX" in flag)
