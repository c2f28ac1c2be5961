"""Configuration: YAML, environment overrides, the original servers' variables, defaults."""

from __future__ import annotations

import pytest

from gguf_model_server.settings import GGUFServerSettings
from serving_core.settings import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("MODEL_DIR", "MODEL_SERVER_PORT", "GGUF_PORT", "GGUF_MODEL_DIR", "GGUF_WARMUP", "PORT"):
        monkeypatch.delenv(var, raising=False)


def test_no_config_serves_the_embedded_models_gemma_first() -> None:
    s = GGUFServerSettings.load()
    assert s.port == 8001
    assert [(m.name, m.backend, m.path) for m in s.models] == [
        ("gemma-3-270m", "llama_cpp", None), ("qwen2.5-0.5b-instruct", "llama_cpp", None),
        ("all-minilm-l6-v2", "llama_cpp", None)]
    assert s.loader_workers is None and s.share_identical_models and s.early_start


def test_yaml_then_env_overrides(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9000\nwarmup: true\nmodels:\n  - {name: a, backend: llama_cpp, path: a.gguf}\n"
                   "  - {name: b, backend: llama_cpp, path: b.gguf}\n")
    s = GGUFServerSettings.load(cfg)
    assert (s.port, s.warmup, s.loader_workers, len(s.models)) == (9000, True, None, 2)
    monkeypatch.setenv("GGUF_WARMUP", "false")
    monkeypatch.setenv("GGUF_LOADER_WORKERS", "1")
    s = GGUFServerSettings.load(cfg)
    assert (s.warmup, s.loader_workers) == (False, 1)


def test_seed_variables_still_work(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_SERVER_PORT", "8111")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    s = GGUFServerSettings.load()
    assert s.port == 8111 and s.model_dir == str(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - {name: a, backend: llama_cpp, path: sub/a.gguf}\n")
    spec = GGUFServerSettings.load(cfg).models[0]
    assert spec.resolved_path(str(tmp_path)) == tmp_path / "sub" / "a.gguf"


def test_generic_port_variable_is_not_taken(monkeypatch) -> None:
    monkeypatch.setenv("PORT", "1234")
    assert GGUFServerSettings.load().port == 8001


def test_cli_arguments_beat_env(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_SERVER_PORT", "8111")
    assert GGUFServerSettings.load(None, port=8222).port == 8222


@pytest.mark.parametrize(
    "yaml_text, field",
    [
        ("load_retries: -1\n", "load_retries"),
        ("models:\n  - {name: 'bad name!', backend: llama_cpp}\n", "models[0].name"),
        ("models:\n  - {name: a, backend: llama-cp}\n", "models[0].backend"),
        ("modles: []\n", "modles"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, yaml_text, field) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as exc:
        GGUFServerSettings.load(cfg)
    assert field in str(exc.value)


def test_asr_ocr_defaults_and_seed_variables(monkeypatch, tmp_path) -> None:
    from asr_ocr_model_server.settings import AsrOcrServerSettings

    monkeypatch.delenv("ASR_OCR_PORT", raising=False)
    s = AsrOcrServerSettings.load()
    assert s.port == 8002 and s.max_request_bytes == 25 * 1024 * 1024
    assert [(m.name, m.backend) for m in s.models] == [("whisper-tiny.en", "faster_whisper"), ("rapidocr", "rapidocr")]
    monkeypatch.setenv("ASR_OCR_PORT", "9002")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    s = AsrOcrServerSettings.load()
    assert s.port == 9002 and s.model_dir == str(tmp_path)


def test_asr_ocr_unknown_backend_is_a_config_error(tmp_path) -> None:
    from asr_ocr_model_server.settings import AsrOcrServerSettings

    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - {name: a, backend: whisperx}\n")
    with pytest.raises(ConfigError) as exc:
        AsrOcrServerSettings.load(cfg)
    assert "models[0].backend" in str(exc.value) and "faster_whisper" in str(exc.value)


def test_example_configs_are_valid() -> None:
    from asr_ocr_model_server.settings import AsrOcrServerSettings

    from server_process import REPO

    assert GGUFServerSettings.load(REPO / "configs" / "gguf.example.yaml").port == 8001
    assert len(GGUFServerSettings.load(REPO / "configs" / "three-models.yaml").models) == 3
    assert AsrOcrServerSettings.load(REPO / "configs" / "asr-ocr.example.yaml").port == 8002


def test_example_configs_list_every_setting() -> None:
    import yaml

    from asr_ocr_model_server.settings import AsrOcrServerSettings
    from gguf_model_server.settings import GGUFServerSettings

    from server_process import REPO

    for cls, name in ((GGUFServerSettings, "gguf.example.yaml"), (AsrOcrServerSettings, "asr-ocr.example.yaml")):
        listed = set(yaml.safe_load((REPO / "configs" / name).read_text()))
        assert set(cls.model_fields) - listed == set(), f"{name} does not list every setting"


def test_a_relative_model_path_that_is_missing_is_shown_resolved(tmp_path, monkeypatch) -> None:
    from gguf_model_server.model_files import resolve_model_path
    from serving_core.errors import PermanentLoadError
    from serving_core.specs import ModelSpec

    spec = ModelSpec(name="m", backend="llama_cpp", path="sub/m.gguf")
    with pytest.raises(PermanentLoadError) as exc:
        resolve_model_path(spec, str(tmp_path))
    assert f"model file not found: {tmp_path}/sub/m.gguf (path 'sub/m.gguf' is relative to MODEL_DIR={tmp_path})" \
        == str(exc.value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PermanentLoadError) as exc:
        resolve_model_path(spec, None)
    assert f"not found: {tmp_path}/sub/m.gguf (path 'sub/m.gguf' is relative to the working directory" in str(exc.value)


def test_a_gguf_model_needs_no_backend_and_an_asr_ocr_model_still_does(tmp_path) -> None:
    from asr_ocr_model_server.settings import AsrOcrServerSettings
    from gguf_model_server.settings import GGUFServerSettings
    from serving_core.settings import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - name: mine\n    path: mine.gguf\n")
    assert GGUFServerSettings.load(cfg).models[0].backend == "llama_cpp"
    with pytest.raises(ConfigError, match=r"models\[0\]\.backend"):
        AsrOcrServerSettings.load(cfg)


def test_an_empty_model_list_is_the_defaults_and_says_so(tmp_path) -> None:
    from gguf_model_server.settings import GGUFServerSettings

    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: []\n")
    settings = GGUFServerSettings.load(cfg)
    assert settings.models_defaulted and settings.models[0].name == "gemma-3-270m"
    cfg.write_text("models:\n  - name: mine\n    path: mine.gguf\n")
    assert not GGUFServerSettings.load(cfg).models_defaulted


def test_model_flags_like_llama_servers(tmp_path) -> None:
    import argparse

    from gguf_model_server.settings import GGUFServerSettings
    from serving_core.settings import ConfigError

    parser = argparse.ArgumentParser()
    GGUFServerSettings.add_cli_arguments(parser)
    args = parser.parse_args(["-m", "~/a/model.gguf", "--model", "/b/model.gguf", "-c", "4096", "-np", "2"])
    settings = GGUFServerSettings.load(None, **GGUFServerSettings.cli_overrides(args))
    assert [m.name for m in settings.models] == ["model", "model-2"]
    assert settings.models[1].path == "/b/model.gguf" and not settings.models[0].path.startswith("~")
    assert all(m.options == {"n_ctx": 4096, "parallel": 2} and m.backend == "llama_cpp" for m in settings.models)
    with pytest.raises(ConfigError, match="go with -m"):
        GGUFServerSettings.cli_overrides(parser.parse_args(["-c", "4096"]))


def test_a_name_without_a_path_that_is_no_embedded_model_says_what_it_serves(caplog) -> None:
    from gguf_model_server.model_files import resolve_model_path
    from serving_core.specs import ModelSpec

    with caplog.at_level("WARNING"):
        path = resolve_model_path(ModelSpec(name="my-llama", backend="llama_cpp"), None)
    assert path.name.startswith("gemma")
    assert "'my-llama' has no path" in caplog.text and "gemma-3-270m" in caplog.text
    caplog.clear()
    resolve_model_path(ModelSpec(name="qwen2.5-0.5b-instruct", backend="llama_cpp"), None)
    assert "has no path" not in caplog.text
