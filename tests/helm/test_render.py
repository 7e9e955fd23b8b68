"""The chart renders with the real helm for every value set, `helm lint --strict` is clean, and
every rendered manifest validates offline: Kubernetes kinds against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields refused), KEDA's ScaledObject and TriggerAuthentication
against KEDA's CRD schemas and the ServiceMonitor against the Prometheus Operator's (vendored in
tests/schemas with their licences)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.helm.conftest import KUBE_VERSIONS, VALUE_SETS, Helm

# The first test may wait for the one-off build of helm (a few minutes on two cores).
pytestmark = pytest.mark.timeout(1800)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda" / "scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS / "keda" / "triggerauthentication-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SCHEMAS
    / "prometheus-operator"
    / "servicemonitor-monitoring-v1.json",
    ("kyverno.io/v1", "ClusterPolicy"): SCHEMAS / "kyverno" / "clusterpolicy-kyverno-v1.json",
}


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it with strict field validation:
    an object with listed properties takes no other field (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Validator:
    schema = _strict(json.loads(CRD_SCHEMAS[(api_version, kind)].read_text()))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def validate(doc: dict[str, Any], kube: str) -> None:
    """Raise when ``doc`` does not validate; every kind must have a schema."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        crd_validator(*key).validate(doc)
        # The CRD's x-kubernetes-validations rule (CEL), checked by hand.
        if doc["kind"] == "ScaledObject":
            spec = doc["spec"]
            assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), "min above max"
        return
    kubernetes_validate.validate(doc, kube, strict=True)


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_lint_is_clean(helm: Helm, value_set: str, kube: str):
    done = helm.lint(VALUE_SETS[value_set], kube=kube)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_manifest_validates(helm: Helm, value_set: str, kube: str):
    rendered = helm.template(VALUE_SETS[value_set], kube=kube)
    assert len(rendered.docs) >= 8
    problems = []
    for doc in rendered.docs:
        try:
            validate(doc, kube)
        except (
            jsonschema.ValidationError,
            kubernetes_validate.ValidationError,
            kubernetes_validate.SchemaNotFoundError,
            AssertionError,
        ) as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {getattr(exc, 'message', exc)}")
    assert not problems, "\n".join(problems)


def test_optional_objects_validate_too(helm: Helm):
    """What no value set turns on: the ServiceMonitor, a chart-made Secret, fixed replicas."""
    rendered = helm.template(
        ["values-gpu.yaml"],
        [
            "serviceMonitor.enabled=true",
            "secrets.existingSecret=",
            "secrets.values.telegramBotToken=t",
            "secrets.values.telegramWebhookSecret=w",
            "secrets.values.s3AccessKeyId=a",
            "secrets.values.s3SecretAccessKey=s",
            "secrets.values.s3BotAccessKeyId=b",
            "secrets.values.s3BotSecretAccessKey=bs",
            "gpuWorker.autoscaling.enabled=false",
            "bot.autoscaling.enabled=false",
            "workers.cache.mode=emptyDir",
        ],
    )
    kinds = {d["kind"] for d in rendered.docs}
    assert {"ServiceMonitor", "Secret"} <= kinds and "ScaledObject" not in kinds
    assert "HorizontalPodAutoscaler" not in kinds
    for doc in rendered.docs:
        validate(doc, KUBE_VERSIONS[0])


def test_keda_scaled_objects_validate_against_the_crd(rendered):
    scaled = rendered.kinds("ScaledObject")
    workers = [d for d in rendered.kinds("Deployment") if "-worker-" in d["metadata"]["name"]]
    assert scaled and len(scaled) == len(workers)
    names = {d["metadata"]["name"] for d in workers}
    for so in scaled:
        crd_validator("keda.sh/v1alpha1", "ScaledObject").validate(so)
        assert so["spec"]["scaleTargetRef"]["name"] in names
        assert so["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_the_validators_refuse_broken_manifests(helm: Helm):
    """The checks above can fail: a typo'd field and a number where KEDA wants a string are refused."""
    rendered = helm.template()
    so = copy.deepcopy(rendered.kinds("ScaledObject")[0])
    so["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 2  # KEDA's metadata values are strings
    with pytest.raises(jsonschema.ValidationError):
        validate(so, KUBE_VERSIONS[0])
    so = copy.deepcopy(rendered.kinds("ScaledObject")[0])
    so["spec"]["maxReplicas"] = 3  # not a field of ScaledObject (maxReplicaCount is)
    with pytest.raises(jsonschema.ValidationError):
        validate(so, KUBE_VERSIONS[0])
    deployment = copy.deepcopy(rendered.kinds("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, KUBE_VERSIONS[0])


def test_an_older_kubernetes_is_refused(helm: Helm):
    assert "chart requires kubeVersion: >=1.30.0-0" in helm.refusal(kube="1.29.0")


def test_helm_tool_refuses_a_helm_of_another_version(tmp_path, monkeypatch):
    """HELM=... must be the pinned version: a fixture given another one fails, it does not go on."""
    import helm_tool

    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho v3.0.0-not-pinned\n")
    fake.chmod(0o755)
    monkeypatch.setenv("HELM", str(fake))
    with pytest.raises(RuntimeError, match=f"is helm v3.0.0-not-pinned, not {helm_tool.DEFAULT_VERSION}"):
        helm_tool.fetch()
