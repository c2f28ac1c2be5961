"""A replica taken away under load, behind a real load balancer: scripts/replica_failover.py (two GGUF
replicas behind HAProxy on loopback ports, 16 clients streaming, SIGTERM to one, then it starts
again) loses no request, and the replica rejoins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from server_process import REPO

pytestmark = pytest.mark.slow


def test_sigterm_to_a_replica_under_load_fails_no_request_and_it_rejoins(tmp_path) -> None:
    out = tmp_path / "failover.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts/replica_failover.py"), "--clients", "16",
                        "--phase-seconds", "5", "--json", str(out), "--log-dir", str(tmp_path / "logs")],
                       capture_output=True, text=True, timeout=600)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failures"] == 0, report["failure_samples"]
    assert r.returncode == 0, r.stderr[-2000:]
    phases = report["phases"]
    assert phases["steady"]["by_replica"].keys() == {"a", "b"}  # both served before
    assert phases["without"]["requests"] > 0 and set(phases["without"]["by_replica"]) == {"a"}
    assert report["replica_b_exit_code"] == 0  # the drain ended by itself, within its bound
    assert report["replica_b_rejoined"] and "b" in phases["after"]["by_replica"]
