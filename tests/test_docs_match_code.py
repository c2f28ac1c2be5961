"""The defaults the documentation states are the code's defaults (issue 18: the docs said 10 s for a
30 s grace, and no doc said what max_tokens a request gets when it leaves it out)."""

from __future__ import annotations

import re

import pytest
import yaml

from asr_ocr_model_server.settings import AsrOcrServerSettings
from gguf_model_server.generation_params import (
    CHAT_DEFAULT_MAX_TOKENS,
    COMPLETION_DEFAULT_MAX_TOKENS,
    GENERATE_DEFAULT_MAX_TOKENS,
)
from gguf_model_server.settings import GGUFServerSettings

from server_process import REPO

SETTINGS = {"gguf.example.yaml": GGUFServerSettings, "asr-ocr.example.yaml": AsrOcrServerSettings}
UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _read(name: str) -> str:
    return (REPO / name).read_text()


def test_the_readme_states_each_routes_default_max_tokens() -> None:
    text = " ".join(_read("README.md").split())
    m = re.search(r"Left out, it is \*\*(\d+)\*\* on `/generate` and `/inference`, \*\*(\d+)\*\* on "
                  r"`/v1/completions` \(OpenAI's default\) and \*\*(\d+)\*\* on `/v1/chat/completions`", text)
    assert m, "the README no longer states the default max_tokens per route"
    assert tuple(map(int, m.groups())) == (GENERATE_DEFAULT_MAX_TOKENS, COMPLETION_DEFAULT_MAX_TOKENS,
                                           CHAT_DEFAULT_MAX_TOKENS)


@pytest.mark.parametrize("config", sorted(SETTINGS))
def test_the_example_configs_show_the_defaults(config: str) -> None:
    cls = SETTINGS[config]
    values = yaml.safe_load((REPO / "configs" / config).read_text())
    for name, field in cls.model_fields.items():
        if name in ("models", "port", "max_request_bytes") or field.default_factory is not None:
            continue  # the models are the file's own; port and body size 0 mean "the server's default"
        assert values[name] == field.default, f"{config}: {name} is {values[name]!r}, the code's default " \
                                              f"{field.default!r}"


def _number(cell: str) -> float | None:
    m = re.fullmatch(r"([\d,.]+)\s*(KiB|MiB|GiB)?", cell.strip())
    if not m:
        return None
    return float(m.group(1).replace(",", "")) * UNITS.get(m.group(2) or "", 1)


def test_the_operations_limits_table_shows_the_defaults() -> None:
    checked = 0
    for line in _read("docs/OPERATIONS.md").splitlines():
        m = re.match(r"\| `(\w+)` \| ([^|]+) \|", line)
        if not m or m.group(1) not in GGUFServerSettings.model_fields:
            continue
        stated = _number(m.group(2))
        if stated is None:
            continue  # prose ("off", per server values): read by people, not parsed here
        default = GGUFServerSettings.model_fields[m.group(1)].default
        assert stated == default, f"docs/OPERATIONS.md says {m.group(1)} = {m.group(2).strip()}; the code: {default}"
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("doc", ["README.md", "docs/ARCHITECTURE.md", "docs/OPERATIONS.md",
                                 "COLD-START-OPTIMIZATIONS.md", "deploy/k8s/README.md"])
def test_seconds_stated_beside_a_setting_are_its_default(doc: str) -> None:
    # "`shutdown_grace_seconds` (30 s)", "`shutdown_grace_seconds`, 30 s"
    for name, seconds in re.findall(r"`(\w+_seconds)`[,:]?\s*\(?(?:default\s*)?(\d+(?:\.\d+)?) s\b", _read(doc)):
        if name in GGUFServerSettings.model_fields:
            assert float(seconds) == GGUFServerSettings.model_fields[name].default, f"{doc}: {name} {seconds} s"


def test_the_readme_names_every_route_of_the_gguf_server() -> None:
    from gguf_model_server.app import create_app
    from gguf_model_server.settings import GGUFServerSettings

    text = _read("README.md")
    paths = create_app(GGUFServerSettings.load(None)).openapi()["paths"]  # what clients see
    routes = [f"{method.upper()} {path}" for path, methods in paths.items() for method in methods]
    assert len(routes) > 20 and "POST /v1/responses" in routes and "POST /api/chat" in routes
    assert [r for r in routes if r not in text] == []
