"""The Helm chart, linted and rendered by Helm's own engine (helm-python-sdk)."""
import pathlib
import subprocess
import sys

import pytest
import yaml

from helm_python.chart import Chart, lint

pytestmark = pytest.mark.unit
ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "arclight"
ROLE_PREFIX = "arclight"


def render(values=None):
    with Chart.load(CHART) as chart:
        manifests = chart.render(values=values or {}, name="arclight", namespace="arclight-system")
    docs = []
    for text in manifests.values():
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def find(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def test_lint_is_clean():
    report = lint(CHART, strict=True, namespace="arclight-system")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_chart_crds_match_generated():
    result = subprocess.run([sys.executable, str(ROOT / "hack" / "sync-chart-crds.py"), "--check"],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_crds_are_gated():
    docs = render()
    names = {d["metadata"]["name"] for d in find(docs, "CustomResourceDefinition")}
    assert {"trainingruns.arclight.dev", "sweeps.arclight.dev", "modeldeployments.arclight.dev",
            "creditbudgets.arclight.dev", "clusterkopfpeerings.kopf.dev"} == names
    assert find(render({"crds": {"install": False}}), "CustomResourceDefinition") == []


def test_deployment_is_locked_down_and_probed():
    (dep,) = find(render(), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "docker.io/arclight/operator:dev"
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert "--peering=arclight" in container["args"] and dep["spec"]["replicas"] == 2
    assert container["resources"]["limits"]["memory"] == "512Mi"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ARCLIGHT_TRAINER_IMAGE"] == "docker.io/arclight/trainer:dev"


def test_single_replica_and_namespace_scope():
    (dep,) = find(render({"replicaCount": 1, "watchNamespaces": ["team-a", "team-b"],
                          "image": {"repository": "r.example/op", "tag": "v1"}}), "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "r.example/op:v1"
    assert "--standalone" in container["args"] and "--all-namespaces" not in container["args"]
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(container["args"])


def test_operator_role_holds_what_it_grants_to_trainers():
    (role,) = find(render(), "ClusterRole", f"{ROLE_PREFIX}-operator")
    held = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}
    for verb in ("get", "patch", "update"):
        assert ("", "configmaps", verb) in held
    assert ("batch", "jobs", "create") in held and ("", "pods", "watch") in held
    assert not any(v == "*" or r == "*" for _, r, v in held)
    assert ("", "secrets", "get") not in held
    (binding,) = find(render(), "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "arclight-operator",
                                    "namespace": "arclight-system"}]


def test_every_port_names_its_protocol():
    """Helm installs with server-side apply, which 1.20 API servers refuse without protocol."""
    docs = render()
    ports = [p for d in find(docs, "Service") for p in d["spec"]["ports"]]
    for deployment in find(docs, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports += container.get("ports", [])
    assert ports and all(p.get("protocol") == "TCP" for p in ports), ports


def test_user_roles_per_kind():
    docs = render()
    names = {d["metadata"]["name"] for d in find(docs, "ClusterRole")}
    for kind in ("trainingruns", "sweeps", "modeldeployments", "creditbudgets"):
        assert {f"arclight-{kind}-editor", f"arclight-{kind}-viewer"} <= names
    (viewer,) = find(docs, "ClusterRole", "arclight-trainingruns-viewer")
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert not find(render({"rbac": {"userRoles": False}}), "ClusterRole",
                    "arclight-trainingruns-viewer")


def test_schema_rejects_bad_values():
    with Chart.load(CHART) as chart:
        with pytest.raises(Exception, match="replicaCount"):
            chart.render(values={"replicaCount": 0}, name="arclight", namespace="x")
        with pytest.raises(Exception, match="unknownKey|additional"):
            chart.render(values={"unknownKey": 1}, name="arclight", namespace="x")


def test_pdb_is_opt_in():
    assert not find(render(), "PodDisruptionBudget")
    (pdb,) = find(render({"podDisruptionBudget": {"enabled": True}}), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
