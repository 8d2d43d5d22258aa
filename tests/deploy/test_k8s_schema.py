"""deploy/k8s validated offline against the Kubernetes API's own schemas.

kubernetes-validate (PyPI) ships the JSON schemas generated from the Kubernetes OpenAPI
specification for every minor version from 1.25 on, in a strict variant that also rejects
unknown fields (a misspelt `readOnlyRootFileSystem` is silently dropped by a lenient schema,
and by older API servers). Every manifest the kustomization lists is validated strictly for
the oldest version the Job supports (native sidecars: 1.29) and the newest one shipped.

What this cannot cover: the PodMonitor is a prometheus-operator custom resource, and no
package reachable here ships its CRD schema, so it is checked for the API kinds it names
only (and its fields by tests/deploy/test_k8s.py). And no cluster runs here: admission,
defaulting and scheduling are not exercised.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.helpers import K8S, load_yaml, load_yaml_all

OLDEST = "1.29"  # native sidecars (init container with restartPolicy: Always), deploy/k8s/job.yaml
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "PodMonitor")}


def _resources() -> list[dict[str, Any]]:
    docs = []
    for name in load_yaml(K8S / "kustomization.yaml")["resources"]:
        docs += load_yaml_all(K8S / name)
    return docs


RESOURCES = _resources()
VERSIONS = (OLDEST, kubernetes_validate.latest_version())


def _is_custom(doc: dict[str, Any]) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc", [d for d in RESOURCES if not _is_custom(d)], ids=lambda d: d["kind"])
def test_manifest_is_valid_for_the_kubernetes_api(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_every_listed_resource_is_checked_or_named_as_custom() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in RESOURCES}
    assert {"Job", "ConfigMap", "Service"} <= {kind for _, kind in kinds}
    assert kinds & CUSTOM_RESOURCES == CUSTOM_RESOURCES
    (custom,) = [d for d in RESOURCES if _is_custom(d)]
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(custom, kubernetes_validate.latest_version(), strict=True)


def test_strict_validation_catches_a_misspelt_field_and_a_wrong_type() -> None:
    """The validator is not a no-op: the shipped Job with one typo, or one wrong type, fails."""
    (job,) = [d for d in RESOURCES if d["kind"] == "Job"]
    typo = copy.deepcopy(job)
    sidecar = typo["spec"]["template"]["spec"]["initContainers"][0]
    context = sidecar["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, OLDEST, strict=True)
    wrong_type = copy.deepcopy(job)
    wrong_type["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = "10001"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, OLDEST, strict=True)
