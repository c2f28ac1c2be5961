"""GPU offload and KV-cache options on a real server. This machine has no GPU: the options are
validated (tests/test_gguf_configs.py), passed through to llama.cpp, and reported on /health; a
layer count on a CPU-only build is logged as having no effect. `scripts/gpu_check.sh` measures a
GPU build where there is one."""

from __future__ import annotations

import pytest

from conftest import TINY_OPTS, start_configured

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_server, model_files, tmp_path_factory):
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "offloaded", "backend": "llama_cpp", "path": "tiny-a.gguf",
         "options": {**TINY_OPTS, "n_gpu_layers": -1, "main_gpu": 0, "tensor_split": [1.0]}},
        {"name": "f32-kv", "backend": "llama_cpp", "path": "tiny-b.gguf",
         "options": {**TINY_OPTS, "flash_attn": "on", "cache_type_k": "f32", "cache_type_v": "f32"}},
        # The tiny models' heads are 16 wide: too narrow for q8_0's blocks of 32 (llama.cpp says so).
        {"name": "q8-kv", "backend": "llama_cpp", "path": "tiny-c.gguf",
         "options": {**TINY_OPTS, "cache_type_k": "q8_0", "cache_type_v": "q8_0"}},
        {"name": "plain", "backend": "llama_cpp", "path": str(model_files["c"]), "options": TINY_OPTS},
    ])


def test_placement_is_reported_on_health(server) -> None:
    models = server.health["models"]
    assert all(models[n]["state"] == "ready" for n in ("offloaded", "f32-kv", "plain")), models
    offloaded, f32, plain = (models[n]["placement"] for n in ("offloaded", "f32-kv", "plain"))
    assert offloaded["layers"] >= 2 and offloaded["gpu_build"] is False
    assert offloaded["gpu_layers"] == 0  # a CPU-only build: every layer stays on the CPU
    assert f32["kv_cache"] == "f32/f32" and plain["kv_cache"] == "f16/f16"


def test_kv_cache_types_reach_llama_cpp_and_its_refusal_is_the_reason(server) -> None:
    q8 = server.health["models"]["q8-kv"]
    assert q8["state"] == "failed" and q8["placement"] is None
    assert "q8_0" in q8["error"] and "n_embd_head_k" in q8["error"]


def test_a_layer_count_on_a_cpu_build_is_logged_as_no_effect(server) -> None:
    log = server.log()
    assert "model 'offloaded': n_gpu_layers=-1 has no effect" in log
    assert "model 'plain': n_gpu_layers" not in log


@pytest.mark.parametrize("model", ["offloaded", "f32-kv", "plain"])
def test_every_placement_generates(server, model) -> None:
    r = server.client.post("/generate", json={"model": model, "prompt": "the", "max_tokens": 8, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1
