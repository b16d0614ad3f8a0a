"""The Helm chart, linted and rendered by Helm's own engine (helm-python-sdk)."""
import pathlib
import subprocess
import sys

import pytest
import yaml
from helm_python.chart import Chart, lint
from helm_python.errors import HelmValuesError

pytestmark = pytest.mark.unit
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are large
ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "arclight"
ROLE_PREFIX = "arclight"


def render(values=None, name="arclight"):
    with Chart.load(CHART) as chart:
        manifests = chart.render(values=values or {}, name=name, namespace="arclight-system")
    docs = []
    for text in manifests.values():
        docs += [d for d in yaml.load_all(text, Loader=LOADER) if d]
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


ARCLIGHT_CRDS = {"trainingruns.arclight.dev", "sweeps.arclight.dev",
                 "modeldeployments.arclight.dev", "creditbudgets.arclight.dev"}
KOPF_CRDS = {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
DIGEST = "sha256:" + "ab" * 32


def test_crds_are_gated():
    docs = render()
    names = {d["metadata"]["name"] for d in find(docs, "CustomResourceDefinition")}
    assert ARCLIGHT_CRDS | KOPF_CRDS == names
    assert find(render({"crds": {"install": False}}), "CustomResourceDefinition") == []


def test_crds_are_kept_on_uninstall_by_default():
    """helm.sh/resource-policy: keep (crds.keep, default true): uninstall leaves the CRDs, and
    with them every user object; the rendered CRDs are the generated ones, unchanged."""
    crds = find(render(), "CustomResourceDefinition")
    for crd in crds:
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    generated = {}
    for path in [*(ROOT / "crds").glob("*.yaml"), *(CHART / "files" / "kopf").glob("*.yaml")]:
        doc = yaml.safe_load(path.read_text())
        generated[doc["metadata"]["name"]] = doc
    assert {c["metadata"]["name"] for c in crds} == set(generated)
    for crd in crds:
        source = generated[crd["metadata"]["name"]]
        assert crd["spec"] == source["spec"]
        assert source["metadata"].get("labels", {}).items() <= crd["metadata"]["labels"].items()
    for crd in find(render({"crds": {"keep": False}}), "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


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
    assert "--standalone" in container["args"] and dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["automountServiceAccountToken"] is True  # the operator is an API client
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ARCLIGHT_TRAINER_IMAGE"] == "docker.io/arclight/trainer:dev"
    assert env["ARCLIGHT_WORKERS"] == "8"
    assert "ARCLIGHT_RESYNC_SECONDS" not in env
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()


def env_of(docs):
    (dep,) = find(docs, "Deployment")
    return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def args_of(docs):
    (dep,) = find(docs, "Deployment")
    return dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_workers_value():
    assert env_of(render({"workers": 32}))["ARCLIGHT_WORKERS"] == "32"
    with Chart.load(CHART) as chart:
        for bad in (0, 65, "8"):
            with pytest.raises(Exception, match="workers"):
                chart.render(values={"workers": bad}, name="arclight", namespace="x")
        with pytest.raises(Exception, match="resyncSeconds|additional"):
            chart.render(values={"resyncSeconds": 30}, name="arclight", namespace="x")


def test_peering_cluster_wide():
    """More than one replica: kopf peering in a ClusterKopfPeering named after the release;
    still Recreate (never two versions side by side)."""
    docs = render({"replicaCount": 3})
    (dep,) = find(docs, "Deployment")
    assert dep["spec"]["replicas"] == 3 and dep["spec"]["strategy"] == {"type": "Recreate"}
    args = args_of(docs)
    assert "--peering=arclight" in args and "--all-namespaces" in args
    assert "--standalone" not in args
    env = env_of(docs)
    assert "POD_ID" in env  # kopf's peering identity: the pod name
    other = args_of(render({"replicaCount": 2}, name="team"))
    assert "--peering=team-arclight" in other


def test_peering_namespaced():
    """With watchNamespaces kopf uses a KopfPeering in each watched namespace: its CRD is
    installed and the operator may read, create and patch those objects."""
    docs = render({"replicaCount": 2, "watchNamespaces": ["team-a", "team-b"]})
    args = args_of(docs)
    assert {"--peering=arclight", "--namespace=team-a", "--namespace=team-b"} <= set(args)
    assert "--all-namespaces" not in args
    assert "kopfpeerings.kopf.dev" in {d["metadata"]["name"]
                                      for d in find(docs, "CustomResourceDefinition")}
    held = rules_held(docs)
    for kind in ("kopfpeerings", "clusterkopfpeerings"):
        for verb in ("get", "list", "watch", "create", "patch"):
            assert ("kopf.dev", kind, verb) in held


def test_image_digests():
    docs = render({"image": {"digest": DIGEST}, "trainer": {"digest": DIGEST}})
    (dep,) = find(docs, "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"docker.io/arclight/operator@{DIGEST}"
    assert env_of(docs)["ARCLIGHT_TRAINER_IMAGE"] == f"docker.io/arclight/trainer@{DIGEST}"
    # Only a trailing tag is dropped; a registry port stays.
    env = env_of(render({"trainer": {"image": "localhost:5000/ml/trainer:v2", "digest": DIGEST}}))
    assert env["ARCLIGHT_TRAINER_IMAGE"] == f"localhost:5000/ml/trainer@{DIGEST}"
    env = env_of(render({"trainer": {"image": "localhost:5000/trainer", "digest": DIGEST}}))
    assert env["ARCLIGHT_TRAINER_IMAGE"] == f"localhost:5000/trainer@{DIGEST}"
    with Chart.load(CHART) as chart:
        for bad in ({"image": {"digest": "sha256:abc"}}, {"trainer": {"digest": "latest"}},
                    {"image": {"digest": "md5:" + "a" * 32}}):
            with pytest.raises(Exception, match="digest"):
                chart.render(values=bad, name="arclight", namespace="x")


def test_single_replica_and_namespace_scope():
    (dep,) = find(render({"replicaCount": 1, "watchNamespaces": ["team-a", "team-b"],
                          "image": {"repository": "r.example/op", "tag": "v1"}}), "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "r.example/op:v1"
    assert "--standalone" in container["args"] and "--all-namespaces" not in container["args"]
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(container["args"])


def rules_held(docs):
    (role,) = find(docs, "ClusterRole", f"{ROLE_PREFIX}-operator")
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def test_operator_role_holds_what_it_grants_to_trainers():
    held = rules_held(render())
    for verb in ("get", "patch", "update"):
        assert ("", "configmaps", verb) in held
    assert ("batch", "jobs", "create") in held and ("", "pods", "watch") in held
    assert not any(v == "*" or r == "*" for _, r, v in held)
    assert ("", "secrets", "get") not in held
    (binding,) = find(render(), "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "arclight-operator",
                                    "namespace": "arclight-system"}]


def test_operator_reads_secrets_only_in_its_namespace():
    """CreditBudget notify Secrets: get (no list, no watch) in the release namespace only, bound
    to the operator's ServiceAccount; the namespace reaches the operator by the downward API."""
    docs = render(name="team")
    (role,) = find(docs, "Role", "team-arclight-operator-secrets")
    assert role["metadata"]["namespace"] == "arclight-system"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    (binding,) = find(docs, "RoleBinding", "team-arclight-operator-secrets")
    assert binding["metadata"]["namespace"] == "arclight-system"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "team-arclight-operator-secrets"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "arclight-operator",
                                    "namespace": "arclight-system"}]
    (dep,) = find(docs, "Deployment")
    (env,) = [e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
              if e["name"] == "ARCLIGHT_NAMESPACE"]
    assert env["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


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


def grants(*rules):
    """(group, resource, verb) triples of rules written as (groups, resources, verbs)."""
    return {(g, r, v) for groups, resources, verbs in rules
            for g in groups for r in resources for v in verbs}


CHILD = ["get", "list", "watch", "create", "patch", "delete"]


def test_operator_role_is_exactly_what_the_operator_uses():
    """The operator indexes every child it owns (list, watch) and prunes the ones no longer
    desired (delete), writes CreditBudget status and removes the metering finalizer from its
    pods (patch), lists artifact claims and sets their metering finalizer (patch), creates a
    Sweep's trials and suspends the ones it prunes (trainingruns create, patch); nothing more:
    no secrets."""
    expected = grants(
        (["arclight.dev"], ["trainingruns"], ["get", "list", "watch", "create", "patch"]),
        (["arclight.dev"], ["sweeps"], ["get", "list", "watch"]),
        (["arclight.dev"], ["trainingruns/status", "modeldeployments/status",
                            "creditbudgets/status", "sweeps/status"], ["get", "patch"]),
        (["arclight.dev"], ["trainingruns/finalizers", "modeldeployments/finalizers",
                            "sweeps/finalizers"], ["update"]),
        (["arclight.dev"], ["modeldeployments"], ["get", "list", "watch", "create", "patch"]),
        (["arclight.dev"], ["creditbudgets"], ["get", "list", "watch"]),
        ([""], ["configmaps"], [*CHILD, "update"]),
        ([""], ["services", "serviceaccounts"], CHILD),
        (["rbac.authorization.k8s.io"], ["roles", "rolebindings"], CHILD),
        (["batch"], ["jobs"], CHILD),
        ([""], ["pods"], ["get", "list", "watch", "patch"]),
        ([""], ["persistentvolumeclaims"], ["list", "patch"]),
        (["apps"], ["deployments"], CHILD),
        (["autoscaling"], ["horizontalpodautoscalers"], CHILD),
        (["keda.sh"], ["scaledobjects"], CHILD),
        (["gateway.networking.k8s.io"], ["httproutes"], CHILD),
        (["", "events.k8s.io"], ["events"], ["create", "patch"]),
        (["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"]),
        ([""], ["namespaces"], ["list", "watch"]),
        (["kopf.dev"], ["clusterkopfpeerings", "kopfpeerings"],
         ["get", "list", "watch", "create", "patch"]),
    )
    assert rules_held(render()) == expected
    text = (CHART / "templates" / "clusterrole.yaml").read_text()
    assert text.count("  # ") >= 15, "every rule keeps a comment saying why"


def policies(docs):
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d
            for d in find(docs, "NetworkPolicy")}


def test_network_policies_are_opt_in():
    assert not find(render(), "NetworkPolicy")
    assert set(policies(render({"networkPolicy": {"enabled": True}}))) == {
        ("arclight-system", "arclight-operator")}  # cluster-wide: no user namespace listed


def test_operator_network_policy():
    docs = render({"networkPolicy": {"enabled": True}})
    policy = policies(docs)[("arclight-system", "arclight-operator")]["spec"]
    (dep,) = find(docs, "Deployment")
    assert policy["podSelector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == []  # no peer configured: nothing may connect
    api, dns, servers = policy["egress"]
    assert api == {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    # the request meter reads the model servers' /v1/stats, in any namespace
    assert servers == {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "arclight.dev/owner-kind": "ModelDeployment", "app.kubernetes.io/component": "server"}}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]}

    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
    kube_dns = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    docs = render({"networkPolicy": {"enabled": True, "operator": {"ingressFrom": [prometheus]},
                                     "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]},
                                     "dns": {"to": [kube_dns]}}})
    policy = policies(docs)[("arclight-system", "arclight-operator")]["spec"]
    assert policy["ingress"] == [{"from": [prometheus], "ports": [
        {"port": 8000, "protocol": "TCP"}, {"port": 8080, "protocol": "TCP"}]}]
    assert policy["egress"][0] == {"ports": [{"port": 6443, "protocol": "TCP"}],
                                   "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}
    assert policy["egress"][1]["to"] == [kube_dns]


def test_trainer_and_serving_policies_per_namespace():
    """Rendered in each watched namespace and each of networkPolicy.namespaces; they select
    the pods the builders label (checked against the builders themselves in
    test_manifest_scan.py, where checkov links policies to pods)."""
    docs = render({"watchNamespaces": ["team-a", "team-b"],
                   "networkPolicy": {"enabled": True, "namespaces": ["team-b", "team-c"]}})
    found = policies(docs)
    assert set(found) == {("arclight-system", "arclight-operator")} | {
        (ns, f"arclight-{kind}") for ns in ("team-a", "team-b", "team-c")
        for kind in ("trainer", "serving")}
    trainer = found[("team-a", "arclight-trainer")]["spec"]
    assert trainer["podSelector"]["matchLabels"] == {
        "arclight.dev/owner-kind": "TrainingRun", "app.kubernetes.io/component": "trainer"}
    assert trainer["policyTypes"] == ["Ingress"]  # egress unrestricted unless asked
    gateway, peers = trainer["ingress"]
    assert gateway["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "arclight-system"}}}]
    assert gateway["ports"] == [{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]
    assert peers == {"from": [{"podSelector": {"matchLabels": trainer["podSelector"]["matchLabels"]}}]}
    serving = found[("team-c", "arclight-serving")]["spec"]
    assert serving["podSelector"]["matchLabels"] == {
        "arclight.dev/owner-kind": "ModelDeployment", "app.kubernetes.io/component": "server"}
    assert serving["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert serving["policyTypes"] == ["Ingress"]


def test_trainer_and_serving_egress_can_be_restricted():
    mlflow = {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"port": 5000}]}
    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gw"}}}
    docs = render({"networkPolicy": {
        "enabled": True, "namespaces": ["team-a"],
        "operatorNamespaceSelector": {"matchLabels": {"arclight.dev/operator": "true"}},
        "trainer": {"restrictEgress": True, "egress": [mlflow]},
        "serving": {"restrictEgress": True, "egress": [mlflow], "ingressFrom": [gateway]}}})
    found = policies(docs)
    trainer = found[("team-a", "arclight-trainer")]["spec"]
    assert trainer["policyTypes"] == ["Ingress", "Egress"]
    api, dns, peers, extra = trainer["egress"]
    assert {p["port"] for p in api["ports"]} == {443, 6443} and dns["ports"][0]["port"] == 53
    assert peers["to"][0]["podSelector"] == trainer["podSelector"]
    assert extra == mlflow
    assert trainer["ingress"][0]["from"][1] == {
        "namespaceSelector": {"matchLabels": {"arclight.dev/operator": "true"}}}
    serving = found[("team-a", "arclight-serving")]["spec"]
    assert serving["policyTypes"] == ["Ingress", "Egress"]
    assert serving["egress"][1:] == [mlflow]  # DNS, then the configured rules; no API server
    assert serving["ingress"][0]["from"][-1] == gateway


def test_network_policy_values_are_validated():
    with Chart.load(CHART) as chart:
        for bad in ({"networkPolicy": {"enabled": "yes"}},
                    {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}},
                    {"networkPolicy": {"namespaces": ["Team_A"]}},
                    {"networkPolicy": {"trainer": {"egress": {"to": []}}}},
                    {"networkPolicy": {"unknown": True}}):
            with pytest.raises(HelmValuesError, match="networkPolicy"):
                chart.render(values=bad, name="arclight", namespace="x")
