"""The optional model packs: definitions, configs and the GGUF size check. Nothing here installs
or downloads a pack (the README's test command never does); the fleet itself is measured in bench/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asr_ocr_model_server.settings import AsrOcrServerSettings
from gguf_model_server.model_files import model_file
from gguf_model_server.settings import GGUFServerSettings
from model_store.assembly import models_dir
from model_store.embedded import DEFAULT_MODEL_NAME, embedded_model_path
from model_store.gguf_size import GGUFHeaderError, gguf_data_end
from model_store.packs import PACKS

from server_process import REPO
from tiny_gguf import write_corrupt, write_tiny_gguf, write_truncated


def test_gguf_size_from_the_header_is_the_file_size_of_real_and_tiny_models(tmp_path: Path) -> None:
    gemma = embedded_model_path(DEFAULT_MODEL_NAME)
    assert gguf_data_end(gemma) == gemma.stat().st_size == 253_113_024
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    assert gguf_data_end(tiny) == tiny.stat().st_size


def test_gguf_size_exposes_a_cut_file_and_refuses_garbage(tmp_path: Path) -> None:
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    cut = write_truncated(tiny, tmp_path / "cut.gguf")
    assert gguf_data_end(cut) == tiny.stat().st_size > cut.stat().st_size
    (tmp_path / "notes.gguf").write_text("not a model")
    with pytest.raises(GGUFHeaderError, match="not a GGUF file"):
        gguf_data_end(tmp_path / "notes.gguf")
    with pytest.raises(GGUFHeaderError):
        gguf_data_end(write_corrupt(tmp_path / "corrupt.gguf"))


def test_every_pack_file_is_pinned_with_a_size_and_hash_and_lives_in_the_cache() -> None:
    for models in PACKS.values():
        for model in models:
            assert model.licence and model.source
            for f in model.files:
                assert f.size > 0 and (f.sha256 is None) == (f.assemble is not None)
                assert all("==" in p.requirement for p in f.packages)
    qwen = PACKS["fleet"][0]
    assert qwen.path == models_dir() / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" and qwen.size == 1_117_320_768


def test_fleet_configs_serve_the_pack_models_from_where_the_pack_puts_them() -> None:
    fleet = {m.name: m for m in PACKS["fleet"]}
    gguf = GGUFServerSettings.load(REPO / "configs/fleet.yaml")
    assert [s.name for s in gguf.models] == [n for n, m in fleet.items() if m.server == "gguf"]
    for spec in gguf.models:
        assert model_file(spec, gguf.model_dir) == fleet[spec.name].path
    asr = AsrOcrServerSettings.load(REPO / "configs/fleet-asr-ocr.yaml")
    assert [(s.name, s.backend) for s in asr.models] == [("whisper-base", "faster_whisper"), ("rapidocr", "rapidocr")]
    assert asr.models[0].resolved_path(asr.model_dir) == fleet["whisper-base"].path


def test_list_names_each_pack_model_with_its_licence() -> None:
    out = subprocess.run([sys.executable, "-m", "model_store", "list"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("fleet: 4 models, 2.01 GB")
    assert "Apache-2.0" in out and "MIT" in out and "whisper-base" in out
