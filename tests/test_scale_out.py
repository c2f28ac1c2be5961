"""The scale-out contract: the load gauges routers and autoscalers read (requests waiting and running,
KV-cache utilization), and the Kubernetes manifests that name them (an InferencePool with its
endpoint picker, a KEDA ScaledObject, an HPA on an external metric)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import StreamReader
from server_process import REPO

K8S = REPO / "deploy" / "k8s"
# No end of text before 1,000 letters (~100 tokens or more): the stream surely runs when scraped.
AT_LEAST_1000_LETTERS = "root ::= h h h h h h h h h h\nh ::= t t t t t t t t t t\nt ::= " + "[a-z ] " * 10
POOL, KEDA, HPA = K8S / "gguf-inference-pool.yaml", K8S / "gguf-keda.yaml", K8S / "gguf-hpa-queue.yaml"


def documents(path: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


def referenced_metrics() -> set[str]:
    """Every metric name the manifests make a router or an autoscaler read."""
    epp = documents(POOL)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    names = {a.split("=", 1)[1] for a in epp if re.match(r"--[a-z-]+-metric=", a)}
    for trigger in documents(KEDA)["ScaledObject"]["spec"]["triggers"]:
        names |= set(re.findall(r"\b(gguf_[a-z_]+)\b", trigger["metadata"]["query"]))
    names |= {m["external"]["metric"]["name"] for m in documents(HPA)["HorizontalPodAutoscaler"]["spec"]["metrics"]
              if m["type"] == "External"}
    return names


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())]
    assert found, f"{name}{labels} is not exported"
    return found[0]


# ------------------------------------------------------------------ the manifests


def test_the_custom_resources_carry_what_their_controllers_require() -> None:
    """InferencePool (inference.networking.k8s.io/v1) and ScaledObject (keda.sh/v1alpha1) have no
    schema offline: their required fields, per the APIs' references, checked here (the core kinds
    beside them go through kubernetes-validate in test_core_kinds_of_the_scale_out_files_validate)."""
    pool = documents(POOL)["InferencePool"]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    spec = pool["spec"]
    assert 1 <= len(spec["selector"]["matchLabels"]) <= 64
    assert len(spec["targetPorts"]) == 1 and 1 <= spec["targetPorts"][0]["number"] <= 65535
    epp_service = documents(POOL)["Service"]
    assert spec["endpointPickerRef"]["name"] == epp_service["metadata"]["name"]
    assert spec["endpointPickerRef"]["port"]["number"] in {p["port"] for p in epp_service["spec"]["ports"]}
    assert spec["endpointPickerRef"].get("failureMode", "FailClose") in {"FailOpen", "FailClose"}
    # The pool selects the GGUF pods of gguf.yaml, on their serving port.
    gguf = documents(K8S / "gguf.yaml")["Deployment"]
    assert spec["selector"]["matchLabels"].items() <= gguf["spec"]["template"]["metadata"]["labels"].items()
    assert spec["targetPorts"][0]["number"] in {p["containerPort"] for p in
                                                 gguf["spec"]["template"]["spec"]["containers"][0]["ports"]}
    epp_args = documents(POOL)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--pool-name={pool['metadata']['name']}" in epp_args

    scaled = documents(KEDA)["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == gguf["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1, "scale-to-zero is off by default"
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "prometheus"
        assert {"serverAddress", "query", "threshold"} <= trigger["metadata"].keys()
        float(trigger["metadata"]["threshold"])  # KEDA wants a number, as a string


def test_core_kinds_of_the_scale_out_files_validate() -> None:
    import subprocess

    from test_deploy_files import tool

    r = subprocess.run([tool("kubernetes-validate"), "--strict", str(POOL), str(KEDA), str(HPA)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    passed = set(re.findall(r"passed for resource (\w+)/", r.stdout))
    assert passed == {"deployment", "service", "serviceaccount", "role", "rolebinding", "horizontalpodautoscaler"}


def test_the_autoscalers_replace_the_cpu_one_rather_than_fight_it() -> None:
    cpu = documents(K8S / "gguf.yaml")["HorizontalPodAutoscaler"]
    assert documents(HPA)["HorizontalPodAutoscaler"]["metadata"]["name"] == cpu["metadata"]["name"]
    assert "kubectl delete hpa " + cpu["metadata"]["name"] in KEDA.read_text()


# ------------------------------------------------------------------ a live server


@pytest.mark.slow
def test_every_metric_a_manifest_names_is_exported(embedded_server) -> None:
    names = referenced_metrics()
    assert {"gguf_requests_waiting", "gguf_requests_running", "gguf_kv_cache_utilization"} <= names
    exported = scrape(embedded_server.url)
    assert names <= exported.keys(), f"not exported: {sorted(names - exported.keys())}"


@pytest.mark.slow
def test_load_gauges_follow_a_running_stream(embedded_server) -> None:
    """While a generation runs its sequence holds KV cells and counts as running; once it ended,
    nothing does (an idle sequence's cached prompt is reusable, not load)."""
    model = next(iter(embedded_server.health["models"]))
    stream = StreamReader(embedded_server.url, "/generate",
                          {"model": model, "prompt": "Once upon a time", "max_tokens": 400, "temperature": 0.9,
                           "grammar": AT_LEAST_1000_LETTERS})
    assert stream.started.wait(120), stream.error
    during = scrape(embedded_server.url)
    stream.join(300)
    assert stream.error is None
    deadline = time.monotonic() + 30
    while True:
        after = scrape(embedded_server.url)
        if value(after, "gguf_requests_running") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert value(during, "gguf_requests_running") >= 1
    assert value(during, "gguf_model_in_flight", model=model) >= 1
    assert 0 < value(during, "gguf_model_kv_cache_utilization", model=model) <= 1
    assert 0 < value(during, "gguf_kv_cache_utilization") <= 1
    assert value(after, "gguf_requests_running") == 0 and value(after, "gguf_requests_waiting") == 0
    assert value(after, "gguf_kv_cache_utilization") == 0
