"""The server-kind table (coldstart/server_kinds.py) is the one place the tools learn which servers
exist: each entry agrees with its server's own settings, entry point and deployment files, and the
cold-start tool, the launcher and the smoke test take their servers from it (issue 19)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import pytest
import tomllib

from coldstart import server_kinds
from coldstart.server_kinds import SERVER_KINDS, ServerKind, by_key

from server_process import REPO

KIND_IDS = [k.key for k in SERVER_KINDS]


@pytest.mark.parametrize("kind", SERVER_KINDS, ids=KIND_IDS)
def test_each_kind_is_what_its_server_says(kind: ServerKind) -> None:
    assert importlib.util.find_spec(kind.module) is not None
    assert importlib.util.find_spec(f"{kind.module}.__main__") is not None  # python -m MODULE
    settings = kind.settings_class()
    assert settings.__module__.split(".")[0] == kind.module
    assert settings.model_config["env_prefix"] == kind.env_prefix
    assert settings.default_port == kind.default_port
    assert tuple(settings.model_fields["port"].validation_alias.choices) == kind.port_variables
    assert kind.deploy_port_variable in kind.port_variables
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[kind.console_script] == f"{kind.module}.__main__:main"
    assert (REPO / kind.dockerfile).is_file() and (REPO / kind.manifest).is_file()


def test_keys_flags_prefixes_ports_and_services_are_distinct() -> None:
    for field in ("key", "module", "env_prefix", "default_port", "flag", "service", "dockerfile",
                  "console_script", "smoke_port_variable"):
        values = [getattr(k, field) for k in SERVER_KINDS]
        assert len(set(values)) == len(values), field
    assert by_key("asr_ocr").service == "asr-ocr"
    with pytest.raises(KeyError, match="no server kind 'nope'"):
        by_key("nope")


@pytest.mark.parametrize("kind", SERVER_KINDS, ids=KIND_IDS)
def test_the_default_configuration_names_each_default_models_weights(kind: ServerKind) -> None:
    settings = kind.settings_class().load(None)
    weights = kind.weights_by_model(None)
    assert list(weights) == [spec.name for spec in settings.models]
    assert all(paths and all(p.is_absolute() for p in paths) for paths in weights.values())


def test_the_probes_of_each_kind() -> None:
    gguf, asr_ocr = by_key("gguf"), by_key("asr_ocr")
    models = {"a": {"state": "ready", "backend": "llama_cpp"}}
    assert [(label, route) for label, route, _ in gguf.first_probes(models)] == [("generate", "/generate")]
    route, kwargs = gguf.model_probe("a", models["a"]) or ("", {})
    assert route == "/generate" and kwargs["json"]["model"] == "a" and kwargs["json"]["max_tokens"] == 1
    route, kwargs = gguf.model_probe("e", {"state": "ready", "task": "embedding"}) or ("", {})
    assert route == "/v1/embeddings" and kwargs["json"]["model"] == "e"  # /health says what each model serves

    models = {"w": {"backend": "faster_whisper"}, "o": {"backend": "rapidocr"}, "x": {"backend": "unknown"}}
    assert [(label, route) for label, route, _ in asr_ocr.first_probes(models)] == [("asr", "/asr"), ("ocr", "/ocr")]
    assert [(label, route) for label, route, _ in asr_ocr.first_probes({"o": models["o"]})] == [("ocr", "/ocr")]
    route, kwargs = asr_ocr.model_probe("w", models["w"]) or ("", {})
    assert route == "/asr" and kwargs["data"] == {"model": "w"} and kwargs["files"]["audio"][1][:4] == b"RIFF"
    route, kwargs = asr_ocr.model_probe("o", models["o"]) or ("", {})
    assert route == "/ocr" and kwargs["data"] == {"model": "o"} and kwargs["files"]["image"][1][:4] == b"\x89PNG"
    assert asr_ocr.model_probe("x", models["x"]) is None


def test_importing_the_tool_imports_no_server_package() -> None:
    code = ("import sys, coldstart.cli, coldstart.server_kinds; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'gguf_model_server', 'asr_ocr_model_server', "
            "'serving_core', 'pydantic', 'numpy', 'llama_cpp'}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


@pytest.fixture
def third_kind(monkeypatch) -> ServerKind:
    """A third server in the table (its package does not exist: nothing here starts it)."""
    third = dataclasses.replace(by_key("gguf"), key="tts", title="TTS server", module="tts_model_server",
                                env_prefix="TTS_", default_port=8003, port_variables=("TTS_PORT",), flag="tts",
                                service="tts", smoke_port_variable="SMOKE_TTS_PORT")
    monkeypatch.setattr(server_kinds, "SERVER_KINDS", (*SERVER_KINDS, third))
    return third


def test_the_cold_start_tool_measures_every_kind_in_the_table(third_kind) -> None:
    from coldstart.cli import build_targets, parse_args

    targets = build_targets(parse_args([]))
    assert [t.kind for t in targets] == list(server_kinds.SERVER_KINDS)
    assert [t.key for t in targets] == [*KIND_IDS, "tts"]
    assert targets[-1].module == "tts_model_server" and targets[-1].env_prefix == "TTS_"

    (only,) = build_targets(parse_args(["--only", "tts", "--tts-config", "t.yaml", "--tts-port", "9"]))
    assert (only.kind, str(only.config), only.port, only.url) == (third_kind, "t.yaml", 9, None)
    # Given a URL, only the servers given by URL are measured.
    (attached,) = build_targets(parse_args(["--tts-url", "http://127.0.0.1:9"]))
    assert attached.kind is third_kind and attached.url == "http://127.0.0.1:9"
    with pytest.raises(SystemExit):
        parse_args(["--tts-url", "http://127.0.0.1:9", "--cold"])


def test_the_table_keeps_the_cold_start_tools_options() -> None:
    from coldstart.cli import build_targets, parse_args

    assert [t.key for t in build_targets(parse_args([]))] == ["gguf", "asr_ocr"]
    (gguf,) = build_targets(parse_args(["--gguf-url", "http://127.0.0.1:1"]))
    assert gguf.key == "gguf" and gguf.url == "http://127.0.0.1:1"
    (asr,) = build_targets(parse_args(["--only", "asr_ocr", "--asr-config", "a.yaml", "--asr-port", "7"]))
    assert asr.key == "asr_ocr" and str(asr.config) == "a.yaml" and asr.port == 7
    assert len(build_targets(parse_args(["--gguf-url", "http://a:1", "--asr-url", "http://b:2"]))) == 2


def test_the_launcher_keeps_every_kinds_port_and_settings_variables_from_children(monkeypatch) -> None:
    from coldstart.processes import server_env

    for kind in SERVER_KINDS:
        for variable in kind.port_variables:
            monkeypatch.setenv(variable, "9")
        monkeypatch.setenv(f"{kind.env_prefix}LOADER_WORKERS", "1")
    scrubbed, kept = server_env(), server_env(keep_settings=True)
    for kind in SERVER_KINDS:
        assert not set(kind.port_variables) & (set(scrubbed) | set(kept))
        assert f"{kind.env_prefix}LOADER_WORKERS" not in scrubbed and kept[f"{kind.env_prefix}LOADER_WORKERS"] == "1"


def test_the_smoke_test_has_a_real_answer_check_for_every_kind() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import docker_smoke
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert set(docker_smoke.ANSWERS) == {k.key for k in SERVER_KINDS}
    assert set(docker_smoke.IMAGES) == {k.service for k in SERVER_KINDS}
