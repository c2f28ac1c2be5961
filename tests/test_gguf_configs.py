"""The example configs in configs/ do what their comments say."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server_process import REPO

pytestmark = pytest.mark.slow


def test_three_models_load_in_parallel_with_load_times(start_server) -> None:
    srv = start_server(config=REPO / "configs" / "three-models.yaml")
    body = srv.wait_settled(timeout=180)
    assert body["status"] == "healthy"
    for name in ("gemma-a", "gemma-b", "gemma-c"):
        assert body["models"][name]["state"] == "ready"
        assert body["models"][name]["load_seconds"] > 0
    assert "PERFORMANCE: Using parallel model loading (3 workers for 3 models)" in srv.log()
    for name in ("gemma-a", "gemma-c"):
        r = srv.client.post("/generate", json={"model": name, "prompt": "The capital of France is",
                                               "max_tokens": 8, "temperature": 0})
        assert r.status_code == 200 and r.json()["model"] == name


def test_one_missing_file_leaves_the_others_serving(start_server) -> None:
    srv = start_server(config=REPO / "configs" / "one-missing.yaml")
    body = srv.wait_settled(timeout=180)
    assert body["status"] == "degraded"
    r = srv.client.get("/health")
    assert r.status_code == 200
    missing = body["models"]["missing"]
    # Clients learn which file is missing, not where the server keeps its files.
    assert missing["state"] == "failed" and missing["error"] == "model file not found: model.gguf"
    assert srv.client.post("/generate", json={"model": "gemma-b", "prompt": "Hi", "max_tokens": 2}).status_code == 200
    r = srv.client.post("/generate", json={"model": "missing", "prompt": "Hi"})
    assert r.status_code == 503 and "model.gguf" in r.text and "/nonexistent" not in r.text
    assert "/nonexistent/model.gguf" in srv.log()


def test_strict_readiness_turns_degraded_into_503(start_server) -> None:
    srv = start_server(config=REPO / "configs" / "one-missing.yaml",
                       env={"GGUF_STRICT_READINESS": "true", "GGUF_SHOW_PATHS_IN_ERRORS": "true"})
    srv.wait_settled(timeout=180)
    r = srv.client.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "degraded"
    assert r.json()["models"]["missing"]["error"] == "model file not found: /nonexistent/model.gguf"


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gguf_model_server", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=env)


def test_invalid_config_exits_2_naming_the_field(tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("loader_workers: 0\nmodels:\n  - {name: m, backend: llama_cpp, pathh: x.gguf}\n")
    r = _run_cli("--config", str(cfg))
    assert r.returncode == 2
    assert "loader_workers" in r.stderr and "models[0].pathh: unknown field (did you mean 'path'?)" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_config_file_exits_2(tmp_path) -> None:
    r = _run_cli("--config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "config file not found" in r.stderr


def test_duplicate_model_names_rejected(tmp_path) -> None:
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("models:\n  - {name: m, backend: llama_cpp}\n  - {name: m, backend: llama_cpp}\n")
    r = _run_cli("--config", str(cfg))
    assert r.returncode == 2 and "duplicate" in r.stderr


def test_loading_starts_before_the_web_stack_is_imported(start_server, model_files, tmp_path) -> None:
    from conftest import write_config

    cfg = write_config(tmp_path / "c.yaml", models=[
        {"name": "t", "backend": "llama_cpp", "path": str(model_files["a"]), "options": {"n_ctx": 256}}])
    srv = start_server(config=cfg)
    srv.wait_settled(timeout=60)
    marks = srv.client.get("/health/startup").json()["marks"]
    assert marks["loading_started"] < marks["web_stack_ready"], marks
    srv_late = start_server(config=cfg, env={"GGUF_EARLY_START": "false"})
    srv_late.wait_settled(timeout=60)
    late = srv_late.client.get("/health/startup").json()["marks"]
    assert late["web_stack_ready"] < late["loading_started"], late


@pytest.mark.parametrize(("content", "env", "expected"), [
    ("models:\n  - name: a\n    backend: llama_cpp\n   path: x\n", {}, "bad.yaml:4:4: not valid YAML"),
    ("port: 8001\n", {"GGUF_LOG_LEVEL": "verbose"},
     "log_level: Input should be 'critical', 'error', 'warning', 'info' or 'debug'; got 'verbose' "
     "(from the environment variable GGUF_LOG_LEVEL='verbose')"),
    ("port: 8001\n", {"GGUF_LOADER_WORKERS": "abc"}, "(from the environment variable GGUF_LOADER_WORKERS='abc')"),
    ("models:\n  - {name: a, backend: llama_cpp, options: {n_ctxx: 1}}\n", {},
     "models[0].options.n_ctxx: unknown field (did you mean 'n_ctx'?)"),
    ("models:\n  - {name: a, backend: llama_cpp, options: {n_ctx: big}}\n", {},
     "models[0].options.n_ctx: Input should be a valid integer"),
    ("models:\n  - {name: a, backend: llama_cp}\n", {}, "(did you mean 'llama_cpp'?)"),
    ("models:\n  - {name: a, backend: llama_cpp, options: {cache_type_v: q8_0, flash_attn: 'off'}}\n", {},
     "cache_type_v q8_0 needs flash attention"),
    ("models:\n  - {name: a, backend: llama_cpp, options: {tensor_split: [-1, 2]}}\n", {},
     "tensor_split shares must be >= 0"),
    ("models:\n  - {name: a, backend: llama_cpp, options: {cache_type_k: q3}}\n", {},
     "models[0].options.cache_type_k: Input should be 'f32', 'f16'"),
], ids=["broken-yaml", "log-level", "env-blamed", "option-typo", "option-type", "backend-typo", "kv-type-needs-fa",
        "tensor-split", "kv-type-unknown"])
def test_configuration_errors_exit_2_with_one_clear_line(tmp_path, content, env, expected) -> None:
    import os

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    r = _run_cli("--config", str(cfg), env={**os.environ, **env})
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 3
