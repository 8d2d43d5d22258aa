"""deploy/k8s: the training Job with alphawatch as a native sidecar, checked without a cluster.

The manifests must parse, the sidecar must be a native sidecar (an init container with
restartPolicy: Always), every mount must name a declared volume with the right access, the
ports must line up with the Service and PodMonitor, and the ConfigMap's config must be a
valid alphawatch config whose paths are the pod's mounts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphawatch.config import load_config

from tests.deploy.helpers import K8S, load_yaml, load_yaml_all


def _docs() -> dict[str, dict[str, Any]]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs = {}
    for resource in kustomization["resources"]:
        for doc in load_yaml_all(K8S / resource):
            docs[doc["kind"]] = doc
    return docs


DOCS = _docs()
POD = DOCS["Job"]["spec"]["template"]
SPEC = POD["spec"]


def _sidecar() -> dict[str, Any]:
    (sidecar,) = [c for c in SPEC["initContainers"] if c["name"] == "alphawatch"]
    return sidecar


def _trainer() -> dict[str, Any]:
    (trainer,) = SPEC["containers"]
    return trainer


def _mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def test_kustomization_lists_every_manifest() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert set(DOCS) == {"ConfigMap", "Job", "Service", "PodMonitor"}
    assert DOCS["PodMonitor"]["apiVersion"] == "monitoring.coreos.com/v1"


def test_alphawatch_is_a_native_sidecar() -> None:
    sidecar = _sidecar()
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"] == ["run", "--config", "/etc/alphawatch/config.yaml"]
    assert SPEC["restartPolicy"] == "Never"
    # the trainer starts only after the sidecar's startup probe passes
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_mounts_match_volumes_and_access() -> None:
    volumes = {v["name"]: v for v in SPEC["volumes"]}
    for container in (_sidecar(), _trainer()):
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes, f"{container['name']} mounts undeclared {mount['name']}"
    for shared in ("checkpoints", "signals"):
        assert "emptyDir" in volumes[shared]
    side, train = _mounts(_sidecar()), _mounts(_trainer())
    assert side["/checkpoints"]["readOnly"] is True and not train["/checkpoints"].get("readOnly")
    assert not side["/signals"].get("readOnly") and train["/signals"]["readOnly"] is True
    assert side["/checkpoints"]["name"] == train["/checkpoints"]["name"]
    assert side["/signals"]["name"] == train["/signals"]["name"]
    assert volumes["config"]["configMap"]["name"] == DOCS["ConfigMap"]["metadata"]["name"]


def test_pod_runs_non_root_with_read_only_root() -> None:
    assert SPEC["securityContext"]["runAsNonRoot"] is True
    assert SPEC["securityContext"]["runAsUser"] == 10001
    for container in (_sidecar(), _trainer()):
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False


def test_ports_match_service_and_podmonitor() -> None:
    (port,) = _sidecar()["ports"]
    labels = POD["metadata"]["labels"]
    svc = DOCS["Service"]["spec"]
    assert svc["selector"].items() <= labels.items()
    (svc_port,) = svc["ports"]
    assert svc_port["targetPort"] == port["name"] and svc_port["port"] == port["containerPort"]
    pm = DOCS["PodMonitor"]["spec"]
    assert pm["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = pm["podMetricsEndpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    # the shipped alert rules look for job="alphawatch"
    assert {"targetLabel": "job", "replacement": "alphawatch"} in endpoint["relabelings"]


def test_configmap_config_is_valid_and_uses_the_mounts(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(DOCS["ConfigMap"]["data"]["config.yaml"])
    cfg = load_config(path)
    side = _mounts(_sidecar())
    assert [str(r.watch) for r in cfg.runs] == ["/checkpoints"]
    assert str(cfg.state.path.parent) in side
    assert str(Path(cfg.stop.file).parent) in side
    assert "/etc/alphawatch" in side
    (port,) = _sidecar()["ports"]
    assert cfg.metrics.port == port["containerPort"]
    trainer_args = _trainer()["args"]
    assert trainer_args[trainer_args.index("--stop-file") + 1] == cfg.stop.file
