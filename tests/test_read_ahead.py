"""Read-ahead: the eager models' weight files are handed to the kernel to read as soon as the
configuration is known (serving_core/read_ahead.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gguf_model_server.settings import GGUFServerSettings
from serving_core import read_ahead

from conftest import TINY_OPTS, write_config


def test_every_file_is_advised_willneed_directories_walked(tmp_path, monkeypatch) -> None:
    (tmp_path / "d").mkdir()
    files = [tmp_path / "a.gguf", tmp_path / "d" / "model.bin", tmp_path / "d" / "vocab.txt"]
    for f in files:
        f.write_bytes(b"x" * 4096)
    advised: list[tuple[str, int]] = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: advised.append(
        (os.readlink(f"/proc/self/fd/{fd}"), advice)) or real(fd, off, n, advice))
    thread = read_ahead.start([files[0], tmp_path / "d", tmp_path / "missing.gguf"])
    assert thread is not None
    thread.join(10)
    assert sorted(advised) == sorted((str(f), os.POSIX_FADV_WILLNEED) for f in files)
    assert read_ahead.start([]) is None


def test_gguf_settings_name_the_eager_models_files_only(model_files) -> None:
    settings = GGUFServerSettings(model_dir=str(model_files["dir"]), models=[
        {"name": "a", "backend": "llama_cpp", "path": "tiny-a.gguf"},
        {"name": "lazy", "backend": "llama_cpp", "path": "tiny-b.gguf", "load": "lazy"},
        {"name": "missing", "backend": "llama_cpp", "path": "nope.gguf"},
    ])
    files = settings.weight_files()
    assert Path(model_files["a"]) in files and Path(model_files["b"]) not in files  # a lazy model waits
    assert list(read_ahead.files_in(files)) == [Path(model_files["a"])]  # a missing file is left to its load


@pytest.mark.parametrize("on", [True, False])
def test_the_server_reads_ahead_unless_told_not_to(start_server, model_files, tmp_path, on) -> None:
    cfg = write_config(tmp_path / "s.yaml", model_dir=str(model_files["dir"]), read_ahead=on, models=[
        {"name": "a", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS},
        {"name": "b", "backend": "llama_cpp", "path": "tiny-b.gguf", "options": TINY_OPTS}])
    srv = start_server(config=cfg)
    assert srv.wait_settled(timeout=60)["status"] == "healthy"
    deadline = time.monotonic() + 10
    while on and "read-ahead of" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("read-ahead of 2 weight files" in srv.log()) is on
