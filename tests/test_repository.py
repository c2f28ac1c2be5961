"""The repository stays usable: benchmark runs do not dirty the tree, the set-up check is instant."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from server_process import REPO


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_new_benchmark_results_are_ignored_by_git() -> None:
    r = subprocess.run(["git", "check-ignore", "-q", "bench/results/bench_ttft.json"], cwd=REPO)
    assert r.returncode == 0
    r = subprocess.run(["git", "ls-files", "bench/reference"], cwd=REPO, capture_output=True, text=True)
    assert "bench/reference/bench_generate_throughput.json" in r.stdout  # the recorded runs stay committed
