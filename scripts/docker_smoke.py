"""The container smoke test (`make docker-smoke`): every server's image built, run with Compose, measured.

Steps: start a Docker engine if none answers (and stop it again at the end), make sure the base
image exists (scripts/docker-base-image.sh), build each server kind's image (host network), bring
them up with deploy/compose.smoke.yml on free ports, wait for Docker's own health status to turn
`healthy`, run `test_cold_start.py --gguf-url … --asr-url …` against them, check real answers
from /generate, /asr and /ocr, and tear down the containers it started (nothing else). Prints
image sizes, build times, container spawn → ready and spawn → first inference. Exit 0 on success.
The servers, their images, Compose services and port variables are coldstart.server_kinds.SERVER_KINDS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from coldstart.processes import free_port  # noqa: E402
from coldstart.server_kinds import SERVER_KINDS, ServerKind  # noqa: E402


def project_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("model-servers")


PROJECT = "model-servers-smoke"
COMPOSE_FILE = REPO / "deploy" / "compose.smoke.yml"
TAG = project_version()  # the tag deploy/k8s/*.yaml use too
KINDS = {k.service: k for k in SERVER_KINDS}  # by Compose service: the report's keys
IMAGES = {k.service: (f"{k.image}:{TAG}", k.dockerfile) for k in SERVER_KINDS}
DOWN = ("unhealthy", "exited", "dead", "missing")  # Docker states of a container that will not get ready
SPEECH = "the quick brown fox jumps over the lazy dog"
IMAGE_TEXT = "HELLO WORLD 2026"


def log(message: str) -> None:
    print(f">>> {message}", flush=True)


def run(*cmd: str, env: dict[str, str] | None = None, capture: bool = False, timeout: float = 3600) -> str:
    res = subprocess.run(cmd, cwd=REPO, env=env, text=True, timeout=timeout, check=False,
                         stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)
    if res.returncode != 0:
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout or ''}")
    return res.stdout or ""


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@contextmanager
def docker_engine() -> Iterator[None]:
    """A running engine; one started here (as root, no bridge network) is stopped afterwards."""
    if shutil.which("docker") and docker_answers():
        yield
        return
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        log("installing Docker (docker.io, docker-compose) from the Debian archive")
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", "docker.io", "docker-compose",
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    log("starting dockerd (host network only: --bridge=none --iptables=false --ip-masq=false)")
    with open(Path(tempfile.gettempdir()) / "model-servers-dockerd.log", "ab") as out:
        daemon = subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"],
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not docker_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("dockerd did not start; see /tmp/model-servers-dockerd.log")
            time.sleep(0.5)
        yield
    finally:
        log("stopping the dockerd started here")
        daemon.terminate()
        with suppress(subprocess.TimeoutExpired):
            daemon.wait(60)


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when there, else v1 (`docker-compose`), installed if missing."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is None:
        run("apt-get", "install", "-y", "-qq", "docker-compose",
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return ["docker-compose"]


def image_size(image: str) -> int:
    return int(run("docker", "image", "inspect", "-f", "{{.Size}}", image, capture=True).strip())


def bytes_in_image(image: str, path: str) -> int:
    out = run("docker", "run", "--rm", "--network", "none", "--entrypoint", "du", image, "-sb", path, capture=True)
    return int(out.split()[0])


def image_id(image: str) -> str | None:
    res = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True,
                         check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def build(service: str) -> float:
    """Build one image; the image this tag named before (an earlier build of ours) is removed, so
    repeated runs do not pile up old images (the build cache of every stage stays)."""
    image, dockerfile = IMAGES[service]
    before = image_id(image)
    t0 = time.perf_counter()
    run("docker", "build", "--network", "host", "-q", "-f", dockerfile, "-t", image, ".", timeout=5400)
    seconds = time.perf_counter() - t0
    if before is not None and before != image_id(image):
        subprocess.run(["docker", "rmi", before], capture_output=True, check=False)
    return seconds


def health_status(compose: list[str], env: dict[str, str], service: str) -> str:
    cid = run(*compose, "ps", "-q", service, env=env, capture=True).strip()
    if not cid:
        return "missing"
    status = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"
    return run("docker", "inspect", "-f", status, cid, capture=True).strip()


def container_exit_code(compose: list[str], env: dict[str, str], service: str) -> int:
    cid = run(*compose, "ps", "-q", service, env=env, capture=True).strip()
    return int(run("docker", "inspect", "-f", "{{.State.ExitCode}}", cid, capture=True).strip())


def poll_ready(urls: dict[str, str], t0: float, timeout: float,
               still_running: Callable[[str], bool]) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds from ``t0`` to each service's first ``/health/ready`` 200 (all polled together), and
    the wall-clock time of each; fails at once if a container stops."""
    ready: dict[str, float] = {}
    wall: dict[str, float] = {}
    checked = time.perf_counter()
    with httpx.Client(timeout=2) as client:
        while len(ready) < len(urls) and time.perf_counter() - t0 < timeout:
            for service, url in urls.items():
                if service in ready:
                    continue
                with suppress(httpx.TransportError):
                    if client.get(f"{url}/health/ready").status_code == 200:
                        ready[service] = round(time.perf_counter() - t0, 2)
                        wall[service] = time.time()
            if time.perf_counter() - checked > 1:
                checked = time.perf_counter()
                stopped = [s for s in urls if s not in ready and not still_running(s)]
                if stopped:
                    raise SystemExit(f"container {stopped} stopped before it was ready")
            time.sleep(0.02)
    if len(ready) < len(urls):
        raise SystemExit(f"not ready after {timeout:.0f} s: {sorted(set(urls) - set(ready))}")
    return ready, wall


def started_at(compose: list[str], env: dict[str, str], service: str) -> float:
    """When Docker started the service's container (wall clock, seconds)."""
    cid = run(*compose, "ps", "-q", service, env=env, capture=True).strip()
    stamp = run("docker", "inspect", "-f", "{{.State.StartedAt}}", cid, capture=True).strip()
    # RFC 3339 with nanoseconds: keep microseconds for fromisoformat.
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def make_media(media_dir: Path) -> tuple[Path, Path]:
    """Synthesized speech of SPEECH and an image of IMAGE_TEXT (made before the clock starts)."""
    from media import render_text_image, speak_wav

    return (speak_wav(SPEECH, media_dir / "speech.wav", speed=150, word_gap=5),
            render_text_image([IMAGE_TEXT], media_dir / "text.png"))


def gguf_answers(client: httpx.Client, url: str, media: tuple[Path, Path]) -> dict[str, Any]:
    """Completion text from Gemma."""
    gen = client.post(f"{url}/generate", json={"prompt": "The capital of France is", "max_tokens": 12,
                                                "temperature": 0})
    gen.raise_for_status()
    text = gen.json()["text"]
    if not any(c.isalpha() for c in text):
        raise SystemExit(f"/generate gave no text: {gen.text}")
    return {"generate": text}


def asr_ocr_answers(client: httpx.Client, url: str, media: tuple[Path, Path]) -> dict[str, Any]:
    """A transcript of the speech, the text in the image."""
    wav, png = media
    asr_resp = client.post(f"{url}/asr", files={"audio": ("speech.wav", wav.read_bytes(), "audio/wav")})
    asr_resp.raise_for_status()
    transcript = asr_resp.json()["transcript"]
    if "fox" not in transcript.lower() or "dog" not in transcript.lower():
        raise SystemExit(f"/asr transcript does not match the speech {SPEECH!r}: {transcript!r}")
    ocr_resp = client.post(f"{url}/ocr", files={"image": ("text.png", png.read_bytes(), "image/png")})
    ocr_resp.raise_for_status()
    extracted = ocr_resp.json()["extracted_text"]
    if "HELLO" not in extracted.upper():
        raise SystemExit(f"/ocr text does not match {IMAGE_TEXT!r}: {extracted!r}")
    return {"asr": transcript, "ocr": extracted}


Answers = Callable[[httpx.Client, str, tuple[Path, Path]], dict[str, Any]]
# Each server kind's real-answer check (by kind key) and the routes it calls: a new kind needs one here.
ANSWERS: dict[str, tuple[tuple[str, ...], Answers]] = {
    "gguf": (("/generate",), gguf_answers),
    "asr_ocr": (("/asr", "/ocr"), asr_ocr_answers),
}


def answer_check(kind: ServerKind) -> tuple[tuple[str, ...], Answers]:
    if kind.key not in ANSWERS:
        raise SystemExit(f"no real-answer check for the server kind {kind.key!r}: add one to ANSWERS in {__file__}")
    return ANSWERS[kind.key]


def first_answers(urls: dict[str, str], media: tuple[Path, Path]) -> dict[str, Any]:
    """Real answers from every server (``urls`` by Compose service), e.g. completion text from Gemma,
    a transcript of the speech, the text in the image."""
    answers: dict[str, Any] = {}
    with httpx.Client(timeout=120) as client:
        for service, url in urls.items():
            answers.update(answer_check(KINDS[service])[1](client, url, media))
    return answers


def listing(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1]])) if items else ""


def smoke(args: argparse.Namespace) -> dict[str, Any]:
    for kind in SERVER_KINDS:
        answer_check(kind)  # before an hour of builds
    report: dict[str, Any] = {}
    log("base image")
    run("bash", "scripts/docker-base-image.sh")
    report["build_seconds"] = {}
    for service in IMAGES:
        log(f"building {IMAGES[service][0]} ({IMAGES[service][1]})")
        report["build_seconds"][service] = round(build(service), 1)
    sizes = {}
    for service, (image, _) in IMAGES.items():
        size = image_size(image)
        models = sum(bytes_in_image(image, path) for path in KINDS[service].image_model_paths)
        sizes[service] = {"image_bytes": size, "model_bytes": models, "without_models_bytes": size - models}
    report["sizes"] = sizes
    compose = compose_command()
    ports = {service: free_port() for service in KINDS}
    env = {**os.environ, "SMOKE_TAG": TAG, **{k.smoke_port_variable: str(ports[s]) for s, k in KINDS.items()}}
    base = [*compose, "-p", PROJECT, "-f", str(COMPOSE_FILE)]
    urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    media = make_media(Path(tempfile.mkdtemp(prefix="docker-smoke-")))
    try:
        log("compose up: " + ", ".join(f"{s} on {p}" for s, p in ports.items()))
        t0 = time.perf_counter()
        run(*base, "up", "-d", "--no-build", env=env)
        ready, wall = poll_ready(urls, t0, args.timeout,
                                 lambda service: health_status(base, env, service) not in DOWN)
        report["compose_up_to_ready_seconds"] = ready
        report["container_start_to_ready_seconds"] = {
            s: round(wall[s] - started_at(base, env, s), 2) for s in urls}
        answers = first_answers(urls, media)
        report["first_inference_after_up_seconds"] = round(time.perf_counter() - t0, 2)
        report["answers"] = answers
        log("waiting for Docker's health status")
        deadline = time.monotonic() + args.timeout
        status = {}
        while time.monotonic() < deadline:
            status = {s: health_status(base, env, s) for s in IMAGES}
            if all(v == "healthy" for v in status.values()):
                break
            if any(v in DOWN for v in status.values()):
                break
            time.sleep(1)
        report["docker_health"] = status
        if any(v != "healthy" for v in status.values()):
            raise SystemExit(f"Docker health is not healthy: {status}")
        log("test_cold_start.py against the containers")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            url_args = [a for s, k in KINDS.items() for a in (f"--{k.flag}-url", urls[s])]
            run(sys.executable, "test_cold_start.py", *url_args, "--quiet", "--json", out.name)
            report["test_cold_start"] = json.loads(Path(out.name).read_text())
        log("docker stop (SIGTERM, drain): every container must exit 0")
        run(*base, "stop", "--timeout", "45", env=env)
        codes = {s: container_exit_code(base, env, s) for s in IMAGES}
        report["exit_codes_after_stop"] = codes
        if any(code != 0 for code in codes.values()):
            raise SystemExit(f"containers did not stop cleanly: {codes}")
    except BaseException:
        print(run(*base, "logs", "--no-color", env=env, capture=True)[-6000:])
        raise
    finally:
        run(*base, "down", "--timeout", "45", env=env)
        shutil.rmtree(media[0].parent, ignore_errors=True)
    log("each server alone: in its container (docker run) and outside, one run each")
    report["container_vs_outside"] = side_by_side()
    return report


def side_by_side() -> dict[str, dict[str, dict[str, float]]]:
    """Each server alone, in its container (`docker run`) and outside (this checkout), one after the
    other: spawn → /health/ready 200 and → the first tiny requests answered (coldstart's probes)."""
    from coldstart.processes import ServerProcess, module_command, server_env
    from coldstart.targets import first_inference

    out: dict[str, dict[str, dict[str, float]]] = {}
    for service, kind in KINDS.items():
        image = IMAGES[service][0]

        name = f"{PROJECT}-{service}-alone"

        def in_container(port: int, image: str = image, port_var: str = kind.deploy_port_variable, name: str = name,
                         server: str = kind.console_script) -> list[str]:
            # Host network: loopback only (the image's default --host 0.0.0.0 would expose it).
            return ["docker", "run", "--rm", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                    "-e", f"{port_var}={port}", image, server, "--host", "127.0.0.1"]

        out[service] = {}
        for where, command in (("container", in_container), ("outside", module_command(kind.module))):
            with tempfile.NamedTemporaryFile(suffix=".log") as log_file:
                srv = ServerProcess(command, Path(log_file.name), env=server_env())
                try:
                    ready, _ = srv.wait_for("/health/ready", lambda r: r.status_code == 200, 300)
                    models = srv.client.get("/health").json()["models"]
                    first_inference(srv.client, kind, models)
                    out[service][where] = {"ready_s": round(ready, 2),
                                           "first_inference_s": round(time.perf_counter() - srv.t_spawn, 2)}
                finally:
                    srv.stop(grace=45)
                    if where == "container":  # gone already unless the docker client itself was killed
                        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return out


def summary(report: dict[str, Any]) -> str:
    mb = 1_000_000
    lines = ["", "container smoke test: PASS", ""]
    for service, s in report["sizes"].items():
        lines.append(f"  {IMAGES[service][0]:24s} {s['image_bytes'] / mb:6.0f} MB "
                     f"({s['without_models_bytes'] / mb:.0f} MB without the {s['model_bytes'] / mb:.0f} MB of models); "
                     f"build {report['build_seconds'][service]:.0f} s")
    ready = report["compose_up_to_ready_seconds"]
    lines.append("  compose up → /health/ready 200: " + ", ".join(f"{s} {ready[s]:.2f} s" for s in KINDS))
    started = report["container_start_to_ready_seconds"]
    lines.append("  container start → /health/ready 200: " + ", ".join(f"{s} {started[s]:.2f} s" for s in KINDS))
    routes = [route for kind in SERVER_KINDS for route in answer_check(kind)[0]]
    lines.append(f"  compose up → first {listing(routes)} answered: "
                 f"{report['first_inference_after_up_seconds']:.2f} s")
    for service, where in report["container_vs_outside"].items():
        c, o = where["container"], where["outside"]
        lines.append(f"  {service} alone, spawn → ready: docker run {c['ready_s']:.2f} s, outside "
                     f"{o['ready_s']:.2f} s; → first inference: {c['first_inference_s']:.2f} s vs "
                     f"{o['first_inference_s']:.2f} s")
    lines.append(f"  Docker health: {report['docker_health']}; exit codes after docker stop: "
                 f"{report['exit_codes_after_stop']}")
    lines.append(f"  answers: {report['answers']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for ready/healthy (default 300)")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    args = p.parse_args()
    with docker_engine():
        report = smoke(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
