"""What operators deploy is checked: every resource in deploy/k8s against Kubernetes' own schemas
(kubernetes-validate, strict: no unknown fields) or, for the Strimzi and Prometheus-operator kinds,
their CRDs' schemas (deploy/check, node); deploy/compose against the compose specification's
schema (check-jsonschema's vendored copy). Each checker is shown to refuse a broken copy."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
CUSTOM_GROUPS = ("kafka.strimzi.io/", "monitoring.coreos.com/")
KUBERNETES = "1.31.0"  # the oldest version the manifests promise to run on (README: Deploying past one machine)


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def core(doc: dict) -> bool:
    return not doc["apiVersion"].startswith(CUSTOM_GROUPS)


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_each_core_resource_is_valid_for_kubernetes(path):
    for doc in filter(core, documents(path)):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_core_check_refuses_a_broken_deployment():
    doc = next(d for d in documents(REPO / "deploy" / "k8s" / "services.yaml") if d["kind"] == "Deployment")
    broken = copy.deepcopy(doc)
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def crds(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(REPO / "deploy" / "check" / "validate-crds.mjs"), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_the_strimzi_and_prometheus_resources_are_valid_for_their_crds():
    custom = [p for p in K8S if any(not core(d) for d in documents(p))]
    assert {p.name for p in custom} == {"kafka.yaml", "alerts.yaml"}
    result = crds(*custom)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert len(checked) == sum(1 for p in custom for d in documents(p) if not core(d))


def test_the_crd_check_refuses_a_broken_topic_and_rule(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata: {name: x}\n"
                      "spec: {partitions: many, replicas: 3}\n---\n"
                      "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: y}\n"
                      "spec: {groups: [{name: g, rules: [{alert: A}]}]}\n", encoding="utf-8")
    result = crds(broken)
    assert result.returncode == 1
    assert "partitions must be integer" in result.stdout and "required property expr" in result.stdout


def compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_compose_file_follows_the_compose_specification(tmp_path):
    result = compose(REPO / "deploy" / "compose" / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    document = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yaml").read_text(encoding="utf-8"))
    service = next(iter(document["services"]))
    document["services"][service]["restart"] = ["always"]
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert compose(broken).returncode == 1
