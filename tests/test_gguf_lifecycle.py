"""The lifecycle on a real GGUF server (real llama.cpp engines are freed and rebuilt): a lazy model,
keep_alive, admin unload/reload. (That a request holds its model is tested in-process,
tests/test_lifecycle.py, where a request can be kept open.)"""

from __future__ import annotations

import json
import time

from conftest import TINY_OPTS, write_config
from server_process import ServerProcess


def _state(srv: ServerProcess, name: str) -> str:
    return str(srv.client.get("/health").json()["models"][name]["state"])


def _wait_state(srv: ServerProcess, name: str, want: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _state(srv, name) != want:
        assert time.monotonic() < deadline, f"{name} never became {want}:\n{srv.log()}"
        time.sleep(0.1)


def test_lazy_model_keep_alive_and_admin_reload_on_real_engines(start_server, model_files, tmp_path) -> None:
    cfg = write_config(tmp_path / "lifecycle.yaml", model_dir=str(model_files["dir"]), idle_check_seconds=0.2,
                       models=[{"name": "lazy", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS,
                                "load": "lazy", "keep_alive": 1},
                               {"name": "eager", "backend": "llama_cpp", "path": "tiny-b.gguf",
                                "options": TINY_OPTS}])
    srv = start_server(config=cfg)
    body = srv.wait_settled(timeout=120)
    assert body["status"] == "healthy" and body["models"]["lazy"]["state"] == "unloaded"
    assert srv.client.get("/health/ready").status_code == 200

    req = {"model": "lazy", "prompt": "the", "max_tokens": 8, "temperature": 0, "cache_prompt": False}
    first = srv.client.post("/generate", json=req)
    assert first.status_code == 200, first.text
    assert float(first.headers["x-model-load-wait-seconds"]) > 0
    with srv.client.stream("POST", "/generate", json={**req, "max_tokens": 200, "stream": True}) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and '"error"' not in "".join(events)
    _wait_state(srv, "lazy", "unloaded")  # idle for keep_alive: freed
    again = srv.client.post("/generate", json=req)
    assert again.status_code == 200 and again.json()["text"] == first.json()["text"]  # loaded again, same model
    # Admin: unload and reload; the eager model is never touched by the lazy one's lifecycle.
    assert srv.client.post("/models/eager/unload").json()["state"] == "unloaded"
    assert srv.client.post("/models/eager/reload").json()["state"] == "ready"
    r = srv.client.post("/generate", json={**req, "model": "eager"})
    assert r.status_code == 200, r.text
    assert "Traceback" not in srv.log()
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] >= 1
