"""The one launcher (coldstart.processes) that the cold-start tool, the benchmarks and the tests use."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from asr_ocr_model_server.backends import weight_paths
from asr_ocr_model_server.settings import AsrOcrServerSettings
from coldstart.processes import REPO, ServerExited, ServerProcess, module_command, server_env


def test_server_env_drops_port_variables_and_by_default_server_settings(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_SERVER_PORT", "9001")
    monkeypatch.setenv("GGUF_LOADER_WORKERS", "1")
    monkeypatch.setenv("MODEL_DIR", "/elsewhere")
    monkeypatch.setenv("UNRELATED", "kept")
    scrubbed = server_env({"ASR_OCR_API_KEY": "k"})
    assert "MODEL_SERVER_PORT" not in scrubbed and "GGUF_LOADER_WORKERS" not in scrubbed
    assert "MODEL_DIR" not in scrubbed
    assert scrubbed["UNRELATED"] == "kept" and scrubbed["ASR_OCR_API_KEY"] == "k"
    assert scrubbed["PYTHONPATH"].split(":")[0] == str(REPO)
    kept = server_env(keep_settings=True)  # the cold-start tool measures the user's own settings
    assert kept["GGUF_LOADER_WORKERS"] == "1" and "MODEL_SERVER_PORT" not in kept


def test_module_command_binds_loopback_on_the_given_port() -> None:
    cmd = module_command("gguf_model_server", Path("c.yaml"))(8123)
    assert cmd == [sys.executable, "-m", "gguf_model_server", "--host", "127.0.0.1", "--port", "8123",
                   "--config", "c.yaml"]


def test_a_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    def crash(port: int) -> list[str]:
        return [sys.executable, "-c", f"print('no server on {port} today'); raise SystemExit(4)"]

    srv = ServerProcess(crash, tmp_path / "log")
    with pytest.raises(ServerExited, match=r"exited with 4:\n.*no server on \d+ today"):
        srv.wait_live(timeout=30)
    assert srv.stop() == 4


def test_weight_paths_of_the_embedded_asr_ocr_models_exist() -> None:
    settings = AsrOcrServerSettings.load()
    paths = [p for spec in settings.models for p in weight_paths(spec, settings.model_dir)]
    assert len(paths) == len(settings.models)
    assert all(p.is_dir() and any(p.iterdir()) for p in paths), paths
