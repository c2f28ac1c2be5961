"""How long OpenMP threads spin before they sleep (stdlib only: set before any model library loads).

llama.cpp and CTranslate2 (faster-whisper) run their threads with GNU OpenMP, which spins at every
barrier before sleeping. On a machine where another process holds a core, a spinning thread keeps
the core its partner needs: Gemma 3 270M decoded 3.5 tokens/s instead of 71 (streams stalled for
30 s; Whisper took 25x longer on a busy machine). GOMP_SPINCOUNT=1000 kept the quiet speed (0.99x)
and made the contended one 7.8x faster (27.5 tokens/s); OMP_WAIT_POLICY=PASSIVE is faster still
when contended (42.7) but costs 40 % on a quiet machine (bench/bench_omp_wait.py, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os

SPIN_COUNT = "1000"


def limit_openmp_spinning() -> None:
    """Set GNU OpenMP's spin count for this process, unless the operator chose one (GOMP_SPINCOUNT
    or OMP_WAIT_POLICY). OpenMP reads it once, when the first library using it loads."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
