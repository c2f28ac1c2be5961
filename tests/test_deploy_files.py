"""The deployment files: Dockerfiles, Compose files and Kubernetes manifests, checked with the
maintained linters and validators (hadolint, docker-compose config, dclint, kubernetes-validate)
and for the properties the servers rely on (ports, probes, drain, non-root, layer order).
Building and running the images is `make docker-smoke` (scripts/docker_smoke.py). The servers, by
Compose service, are coldstart.server_kinds.SERVER_KINDS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coldstart.server_kinds import SERVER_KINDS
from gguf_model_server.settings import GGUFServerSettings
from serving_core.probe import probe_port

from conftest import TINY_OPTS, write_config
from server_process import REPO

KINDS = {k.service: k for k in SERVER_KINDS}  # by Compose service
DOCKERFILES = {s: REPO / k.dockerfile for s, k in KINDS.items()}
SETTINGS = {s: k.settings_class() for s, k in KINDS.items()}
DEFAULT_PORTS = {s: k.default_port for s, k in KINDS.items()}
K8S = {s: REPO / k.manifest for s, k in KINDS.items()}
COMPOSE = REPO / "docker-compose.yml"
SMOKE_COMPOSE = REPO / "deploy/compose.smoke.yml"
DCLINT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "model-servers/npm/node_modules/.bin/dclint"


def tool(name: str) -> str:
    """A tool the README's test command installs (pyproject dev extra or scripts/install-test-deps.sh)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: run `make test` (scripts/install-test-deps.sh)"
    return found


def stages(dockerfile: Path) -> dict[str, list[str]]:
    """Instructions per build stage (continuation lines joined); the last stage is named "runtime"."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out: dict[str, list[str]] = {}
    current = "preamble"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            m = re.search(r"\bAS (\S+)", line)
            current = m.group(1) if m else "runtime"
        out.setdefault(current, []).append(line)
    return out


def port_variables(settings: type) -> list[str]:
    return list(settings.model_fields["port"].validation_alias.choices)


# ------------------------------------------------------------------ Dockerfiles


def test_dockerfiles_pass_hadolint() -> None:
    r = subprocess.run([tool("hadolint"), *map(str, DOCKERFILES.values())], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


@pytest.mark.parametrize("server", DOCKERFILES)
def test_runtime_stage_is_non_root_without_compilers_or_sources(server: str) -> None:
    runtime = stages(DOCKERFILES[server])["runtime"]
    user = [i for i in runtime if i.startswith("USER ")]
    assert user and re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", user[-1]), user
    joined = "\n".join(runtime)
    assert "build-essential" not in joined and "cmake" not in joined
    # The project is installed as a wheel from another stage: no source tree, no editable install.
    assert not any(i.startswith("COPY") and "--from=" not in i for i in runtime), runtime
    assert " -e " not in joined and "--editable" not in joined


@pytest.mark.parametrize("server", DOCKERFILES)
def test_sources_are_copied_only_after_the_dependency_layers(server: str) -> None:
    """A .py change must not reinstall dependencies (or recompile llama-cpp-python): the stages that
    install them copy nothing but pyproject.toml and the requirements script."""
    all_stages = stages(DOCKERFILES[server])
    for name in ("llama-build", "deps", "models"):
        allowed = {"pyproject.toml", "scripts/pyproject_requirements.py"}
        if name == "models":  # the embedded models' table and what `python -m model_store embedded` imports
            allowed |= {f"model_store/{module}.py" for module in ("__init__", "__main__", "assembly", "embedded",
                                                                 "packs", "bert_gguf")}
        for instruction in all_stages.get(name, []):
            if instruction.startswith("COPY") and "--from=" not in instruction:
                sources = instruction.split()[1:-1]
                assert set(sources) <= allowed, instruction
    runtime = all_stages["runtime"]
    deps_at = next(i for i, x in enumerate(runtime) if "--from=deps" in x)
    app_at = next(i for i, x in enumerate(runtime) if "--from=app-build" in x)
    assert deps_at < app_at


def test_gguf_image_builds_the_pinned_llama_cpp_python_for_any_avx2_cpu() -> None:
    text = DOCKERFILES["gguf"].read_text()
    pinned = re.search(r'"llama-cpp-python==([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and f"ARG LLAMA_VERSION={pinned.group(1)}" in text
    flags = re.search(r'ARG LLAMA_CMAKE_ARGS="([^"]+)"', text)
    assert flags and "-DGGML_NATIVE=OFF" in flags.group(1) and "-DGGML_AVX2=ON" in flags.group(1)
    assert "AVX512" not in flags.group(1)


@pytest.mark.parametrize("server", DOCKERFILES)
def test_healthcheck_probes_readiness_on_the_port_the_server_reads(server: str) -> None:
    runtime = stages(DOCKERFILES[server])["runtime"]
    check = next(i for i in runtime if i.startswith("HEALTHCHECK"))
    args = re.search(r"CMD (\[.*\])", check)
    assert args, check
    argv = yaml.safe_load(args.group(1))
    assert argv[:3] == ["python", "-m", "serving_core.probe"]
    # The probe reads exactly the variables the server reads its port from, with its default.
    assert argv[3:-1] == port_variables(SETTINGS[server]) and argv[-1] == str(DEFAULT_PORTS[server])
    cmd = next(i for i in runtime if i.startswith("CMD"))
    assert "--port" not in cmd and '"--host", "0.0.0.0"' in cmd
    assert any(i == "STOPSIGNAL SIGTERM" for i in runtime)


def test_dockerignore_keeps_models_and_build_output_out_of_the_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".git", "models", "*.egg-info", "build", "dist"} <= ignored


def test_requirements_script_lists_base_and_extra_dependencies() -> None:
    script = REPO / "scripts/pyproject_requirements.py"
    r = subprocess.run([sys.executable, str(script), str(REPO / "pyproject.toml"), "asr,ocr"],
                       capture_output=True, text=True, check=True)
    lines = r.stdout.split()
    assert any(x.startswith("fastapi") for x in lines) and any(x.startswith("faster-whisper") for x in lines)
    assert not any(x.startswith("llama-cpp-python") or x.startswith("torch") for x in lines)
    bad = subprocess.run([sys.executable, str(script), str(REPO / "pyproject.toml"), "nope"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown extras ['nope']" in bad.stderr


# ------------------------------------------------------------------ the container health probe


def test_probe_port_follows_the_servers_port_variables(monkeypatch) -> None:
    monkeypatch.delenv("GGUF_PORT", raising=False)
    monkeypatch.delenv("MODEL_SERVER_PORT", raising=False)
    assert probe_port(["GGUF_PORT", "MODEL_SERVER_PORT"], 8001) == 8001
    monkeypatch.setenv("MODEL_SERVER_PORT", "9001")
    assert probe_port(["GGUF_PORT", "MODEL_SERVER_PORT"], 8001) == 9001
    monkeypatch.setenv("GGUF_PORT", "9002")  # the server prefers GGUF_PORT too
    assert probe_port(["GGUF_PORT", "MODEL_SERVER_PORT"], 8001) == 9002


def test_probe_is_healthy_only_when_the_server_there_is_ready(start_server, model_files, tmp_path) -> None:
    config = write_config(tmp_path / "tiny.yaml", models=[
        {"name": "tiny-a", "backend": "llama_cpp", "path": str(model_files["a"]), "options": TINY_OPTS}])
    srv = start_server(config=config)
    srv.wait_settled(timeout=60)

    def probe(port: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MODEL_SERVER_PORT": str(port)}
        env.pop("GGUF_PORT", None)
        return subprocess.run([sys.executable, "-m", "serving_core.probe", "GGUF_PORT", "MODEL_SERVER_PORT", "1"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=30)

    assert probe(srv.port).returncode == 0
    srv.stop()
    gone = probe(srv.port)
    assert gone.returncode == 1 and f"not ready on port {srv.port}" in gone.stderr


# ------------------------------------------------------------------ Compose


@pytest.mark.parametrize("path", [COMPOSE, SMOKE_COMPOSE], ids=["compose", "smoke"])
def test_compose_files_are_valid_for_compose_v1(path: Path) -> None:
    env = {**os.environ, "SMOKE_TAG": "0", **{k.smoke_port_variable: str(i) for i, k in enumerate(SERVER_KINDS, 1)}}
    r = subprocess.run([tool("docker-compose"), "-f", str(path), "config", "-q"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_files_pass_dclint() -> None:
    assert DCLINT.exists(), f"{DCLINT} missing: run scripts/install-test-deps.sh"
    r = subprocess.run([str(DCLINT), str(COMPOSE), str(SMOKE_COMPOSE)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and "problem" not in r.stdout, r.stdout + r.stderr


def test_compose_services_are_independent_loopback_only_and_drain_before_kill() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == set(KINDS)
    bound = default_shutdown_bound()
    for name, svc in services.items():
        assert "depends_on" not in svc and "links" not in svc
        assert svc["ports"] == [f"127.0.0.1:{DEFAULT_PORTS[name]}:{DEFAULT_PORTS[name]}"]
        assert svc["restart"] == "unless-stopped" and svc["cpus"] and svc["mem_limit"]
        assert any(v.endswith(":/models:ro") for v in svc["volumes"])
        assert svc["environment"]["MODEL_DIR"] == "/models"
        assert svc["environment"][KINDS[name].deploy_port_variable] == str(DEFAULT_PORTS[name])
        assert svc["healthcheck"]["test"][1:4] == ["python", "-m", "serving_core.probe"]
        assert int(svc["stop_grace_period"].rstrip("s")) > bound  # no SIGKILL before the server's own bound


def test_smoke_compose_runs_each_kinds_image_on_the_port_the_smoke_test_sets() -> None:
    """deploy/compose.smoke.yml is what scripts/docker_smoke.py reads from the server-kind table: one
    service per kind, its image, its console script on loopback, its port from its SMOKE_* variable."""
    services = yaml.safe_load(SMOKE_COMPOSE.read_text())["services"]
    assert set(services) == set(KINDS)
    for name, svc in services.items():
        kind = KINDS[name]
        assert svc["image"].startswith(f"{kind.image}:${{SMOKE_TAG")
        port = f"${{{kind.smoke_port_variable}:?set by the smoke test}}"
        assert svc["environment"] == {kind.deploy_port_variable: port}
        assert svc["command"] == [kind.console_script, "--host", "127.0.0.1"]


# ------------------------------------------------------------------ Kubernetes


def test_kubernetes_manifests_validate_strictly() -> None:
    r = subprocess.run([tool("kubernetes-validate"), "--strict", *map(str, K8S.values())],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("passed") == 4 * len(K8S), r.stdout  # Deployment, Service, HPA and PDB for each server


@pytest.mark.parametrize("server", K8S)
def test_kubernetes_probes_security_and_drain(server: str) -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(K8S[server].read_text())}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"requests", "limits"} <= set(container["resources"])
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + default_shutdown_bound()
    from importlib.metadata import version

    assert container["image"] == f"{KINDS[server].image}:{version('model-servers')}"
    env = {e["name"]: e["value"] for e in container["env"]}
    port_var = KINDS[server].deploy_port_variable
    assert int(env[port_var]) == container["ports"][0]["containerPort"] == docs["Service"]["spec"]["ports"][0]["port"]
    # Probes go to the health listener (outside the connection limit), on the port the server reads.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    prefix = SETTINGS[server].model_config["env_prefix"]
    assert int(env[f"{prefix}HEALTH_PORT"]) == ports["health"] != ports["http"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "health"


def default_shutdown_bound() -> float:
    """How long a server with default settings may take to shut down (it exits itself after that)."""
    from serving_core.cli import shutdown_bound

    fields = GGUFServerSettings.model_fields
    return shutdown_bound(fields["shutdown_grace_seconds"].default, fields["shutdown_drain_seconds"].default)
