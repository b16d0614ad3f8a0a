"""A manifest scanner (checkov) on what Arclight puts into a cluster: the Helm chart as Helm's own
engine renders it (default values, NetworkPolicies on, image digests set) and the children the
operator's pure builders produce for a TrainingRun and a ModelDeployment.

Every failed check fails the test unless it is in a skip list below, each entry with the reason
it does not apply. A skipped check that no longer fails fails the test too, so the lists shrink
when a builder or the chart is fixed. checkov pins many dependencies, so it lives in its own
virtualenv, `.venv-scan`, which hack/setup-python.sh creates (`make unit` and `make test` run
it first).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest
import yaml
from helm_python.chart import Chart

pytestmark = pytest.mark.unit
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are large
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "arclight"
CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
DIGEST = "sha256:" + "0" * 64

# (check id, resource, or the start of checkov's resource name) -> why it does not apply.
CHART_SKIPS = {
    # The operator is a Kubernetes API client (it watches, applies children, writes status):
    # it needs its service account token. Its ClusterRole is least-privileged (test_chart.py).
    ("CKV_K8S_38", "Deployment.arclight-system.arclight-operator"):
        "the operator needs its token",
    # image.digest is optional (tags are what `hack/images.sh` loads into the local cluster);
    # with a digest set the check passes (the `digests` scan below).
    ("CKV_K8S_43", "Deployment.arclight-system.arclight-operator"): "image.digest is optional",
    # Always would pull on every start, impossible for images loaded into containerd without a
    # registry (the local cluster, air-gapped installs); checkov accepts any policy with a digest.
    ("CKV_K8S_15", "Deployment.arclight-system.arclight-operator"):
        "IfNotPresent for locally loaded images; passes with image.digest",
    # CreditBudget spec.notify names Secrets of the operator's namespace (webhook URLs with
    # tokens, signing keys), chosen by whoever writes the budget: get (no list, no watch) on
    # Secrets of that one namespace (test_chart.py), no resourceNames to keep in step.
    ("CKV2_K8S_5", "RoleBinding.arclight-system.arclight-operator-secrets"):
        "get on the operator's own namespace's Secrets, for notify",
}
# Only with the default values: NetworkPolicies are opt-in (networkPolicy.enabled), like every
# chart that cannot know the cluster's network plugin; the networkPolicy scan has no skip.
DEFAULT_VALUES_SKIPS = {
    ("CKV2_K8S_6", "Pod.arclight-system.arclight-operator."): "networkPolicy is opt-in",
}
# Findings on the builders' children (scanned together with the chart's NetworkPolicies for
# their namespace, which must select their pods). None needs a change in operator/ today.
BUILDER_SKIPS = {
    # Trainers and model servers get a CPU request but deliberately no CPU limit: CFS quotas
    # throttle the torch loop and token generation (many threads, bursty) while the request
    # already guarantees the share the scheduler reserved. Memory limits are set.
    ("CKV_K8S_11", "Job.team-a.demo-trainer-1"): "no CPU limit on trainers, on purpose",
    ("CKV_K8S_11", "Job.team-a.multi-trainer-1"): "no CPU limit on trainers, on purpose",
    ("CKV_K8S_11", "Deployment.team-a.chat-0123abcd"): "no CPU limit on servers, on purpose",
    # The image is the chart's trainer.image, digest-pinned exactly when the platform sets
    # trainer.digest (ARCLIGHT_TRAINER_IMAGE is then repository@digest): with a digest both
    # checks pass (the `digest` builder scan below). Pull policy is the
    # cluster default for a tag (IfNotPresent); Always cannot work for images loaded into
    # containerd without a registry (the local cluster, air-gapped installs).
    ("CKV_K8S_43", "Job.team-a.demo-trainer-1"): "trainer.digest is optional",
    ("CKV_K8S_43", "Job.team-a.multi-trainer-1"): "trainer.digest is optional",
    ("CKV_K8S_43", "Deployment.team-a.chat-0123abcd"): "trainer.digest is optional",
    ("CKV_K8S_15", "Job.team-a.demo-trainer-1"): "IfNotPresent for a tag; passes with a digest",
    ("CKV_K8S_15", "Job.team-a.multi-trainer-1"): "IfNotPresent for a tag; passes with a digest",
    ("CKV_K8S_15", "Deployment.team-a.chat-0123abcd"):
        "IfNotPresent for a tag; passes with a digest",
    # The trainer patches its run's report ConfigMap with its own token (a Role limited to
    # that one ConfigMap, docs/architecture.md): it needs the token. Model servers need none
    # and already set automountServiceAccountToken: false.
    ("CKV_K8S_38", "Job.team-a.demo-trainer-1"): "the trainer writes its report ConfigMap",
    ("CKV_K8S_38", "Job.team-a.multi-trainer-1"): "the trainer writes its report ConfigMap",
}
# The bundled ledger (ledger.bundled.enabled): its StatefulSet passes every check but the image
# ones, which pass with its digest set (the `bundled` scan sets every digest).
LEDGER_SKIPS = {
    # The operator reads its DSN from ARCLIGHT_LEDGER_DSN (operator settings); a secretKeyRef
    # keeps it out of the pod spec. A file would need an ..._FILE setting in the operator.
    ("CKV_K8S_35", "Deployment.arclight-system.arclight-operator"):
        "the operator reads the DSN from its environment",
}
IMAGE_CHECKS = ("CKV_K8S_43", "CKV_K8S_15")


def builder_manifests(image: str = "docker.io/arclight/trainer:dev") -> list[dict]:
    """The children the operator's builders produce: a single-node TrainingRun attempt (with
    the artifacts claim), a multi-node one, and a ModelDeployment revision with its Service,
    per-revision Service and HPA. The one place to adapt when the builders' signatures change
    (see tests/unit/test_builders_*.py for the same calls)."""
    from types import SimpleNamespace

    from arclight.api.trainingrun import ResolvedResources, TrainingRunSpec
    from arclight.core.names import Owner
    from arclight.serving import builders as serving
    from arclight.training import builders as training
    from arclight.training.resolve import resolve

    docs: list[dict] = []
    for name, nodes in (("demo", 1), ("multi", 2)):
        spec = {"template": "math-solver", "resources": {"nodes": nodes},
                "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 3600}
        run = {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
               "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}"},
               "spec": spec}
        resolution = resolve(spec, name=name, namespace="team-a", uid=f"uid-{name}", attempt=1,
                             settings=SimpleNamespace(mlflow_uri=None))
        docs += training.build_children(
            Owner.of(run), TrainingRunSpec.model_validate(spec), resolution.trainer_config,
            image=image, artifacts_claim="arclight-artifacts",
            resources=ResolvedResources.model_validate(resolution.resolved["resources"]))
    md = {"apiVersion": "arclight.dev/v1alpha1", "kind": "ModelDeployment",
          "metadata": {"name": "chat", "namespace": "team-a", "uid": "uid-chat"},
          "spec": {"source": {"trainingRun": "demo"}, "runtime": "auto",
                   "resources": {"gpu": {"type": "none", "count": 0}, "cpu": "2",
                                 "memory": "3Gi"},
                   "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}}
    revision = "chat-0123abcd"
    source = {"uri": "pvc://arclight-artifacts/team-a/demo/final", "trainingRun": "demo"}
    docs += [serving.build_deployment(md, revision, source, image=image,
                                      runtime="transformers", replicas=None),
             serving.build_service(md), serving.build_revision_service(md, revision),
             serving.build_hpa(md, "autoscaling/v2", revision, 1, 3, None, 300)]
    return docs


def render_chart(values: dict | None = None) -> list[dict]:
    with Chart.load(CHART) as chart:
        manifests = chart.render(values=values or {}, name="arclight", namespace="arclight-system")
    return [d for text in manifests.values() for d in yaml.load_all(text, Loader=LOADER) if d]


def _checkov_command(manifest: pathlib.Path) -> list[str]:
    return [str(CHECKOV), "--file", str(manifest), "--framework", "kubernetes",
            "--output", "json", "--skip-download", "--quiet"]


def checkov_all(targets: dict[str, list[dict]], directory: pathlib.Path) -> dict[str, dict]:
    """Run checkov on each target (name -> documents), concurrently, each in its own run:
    its graph checks (a Pod and the NetworkPolicies selecting it) ignore namespaces, so
    targets must not share a file. Returns name -> checkov's Kubernetes report."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run hack/setup-python.sh (it creates .venv-scan)")
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "LOG_LEVEL": "WARNING"}
    env.pop("BC_API_KEY", None)  # never the platform: the bundled checks only
    running = {}
    for name, docs in targets.items():
        manifest = directory / f"{name}.yaml"
        manifest.write_text(yaml.dump_all(docs, Dumper=DUMPER, sort_keys=False))
        running[name] = subprocess.Popen(_checkov_command(manifest), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=env)
    reports = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode in (0, 1), err[-3000:]  # 1: some check failed
        report = json.loads(out)
        if isinstance(report, list):  # one entry per framework
            (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
        reports[name] = report
    return reports


def verdict(report: dict, skips: dict) -> tuple[list[str], list[str], int]:
    """(findings not covered by ``skips``, skip entries that matched nothing, passed count)."""
    failed = [(c["check_id"], c["resource"], c["check_name"])
              for c in report["results"]["failed_checks"]]

    def covered(check_id: str, resource: str) -> tuple[str, str] | None:
        return next((key for key in skips if key[0] == check_id
                     and (resource == key[1] or key[1].endswith(".") and
                          resource.startswith(key[1]))), None)

    findings = [f"{cid} {res}: {name}" for cid, res, name in failed if not covered(cid, res)]
    used = {covered(cid, res) for cid, res, _ in failed}
    stale = [f"{cid} {res}" for cid, res in skips if (cid, res) not in used]
    print(f"checkov: {report['summary']['passed']} passed, {report['summary']['failed']} failed "
          f"({len(failed) - len(findings)} of them skipped with a reason)")
    return findings, stale, report["summary"]["passed"]


def with_network_policies(docs: list[dict]) -> list[dict]:
    """``docs`` and the chart's NetworkPolicies for their namespace (team-a): checkov then
    sees whether those policies select the builders' pods."""
    policies = [d for d in render_chart({"networkPolicy": {"enabled": True,
                                                           "namespaces": ["team-a"]}})
                if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "team-a"]
    assert len(policies) == 2, policies
    return docs + policies


CHART_VALUES = {
    "defaults": {},
    "networkPolicy": {"networkPolicy": {"enabled": True, "namespaces": ["team-a"]},
                      "replicaCount": 2, "podDisruptionBudget": {"enabled": True}},
    # Namespaced, with digests: the image checks pass, so no image skip is needed.
    "digests": {"image": {"digest": DIGEST}, "trainer": {"digest": DIGEST},
                "networkPolicy": {"enabled": True}, "watchNamespaces": ["team-a", "team-b"]},
    # The bundled ledger's Postgres, with its NetworkPolicy and every image by digest.
    "bundled": {"image": {"digest": DIGEST}, "trainer": {"digest": DIGEST},
                "ledger": {"bundled": {"enabled": True, "image": {"digest": DIGEST}}},
                "networkPolicy": {"enabled": True}},
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict]:
    targets = {f"chart-{name}": render_chart(values) for name, values in CHART_VALUES.items()}
    targets["builders"] = with_network_policies(builder_manifests())
    targets["builders-digest"] = with_network_policies(
        builder_manifests(f"docker.io/arclight/trainer@{DIGEST}"))
    return checkov_all(targets, tmp_path_factory.mktemp("scan"))


def without_image_checks(skips: dict) -> dict:
    return {key: why for key, why in skips.items() if key[0] not in IMAGE_CHECKS}


@pytest.mark.parametrize("target, skips", [
    pytest.param("chart-defaults", {**CHART_SKIPS, **DEFAULT_VALUES_SKIPS}, id="defaults"),
    pytest.param("chart-networkPolicy", CHART_SKIPS, id="networkPolicy"),
    # With image.digest and trainer.digest set, the digest and pull-policy checks pass: their
    # skips exist only because the digest is optional.
    pytest.param("chart-digests", without_image_checks(CHART_SKIPS), id="digests"),
    pytest.param("chart-bundled", {**without_image_checks(CHART_SKIPS), **LEDGER_SKIPS},
                 id="bundled"),
])
def test_chart_passes_the_scanner(reports, target, skips):
    findings, stale, passed = verdict(reports[target], skips)
    assert findings == [], "fix these in the chart, or skip them with a reason:\n" + \
        "\n".join(findings)
    assert stale == [], f"these skips no longer match a finding; remove them: {stale}"
    assert passed > 100


@pytest.mark.parametrize("target, skips", [
    pytest.param("builders", BUILDER_SKIPS, id="tags"),
    pytest.param("builders-digest", without_image_checks(BUILDER_SKIPS), id="digest"),
])
def test_builder_children_pass_the_scanner(reports, target, skips):
    findings, stale, passed = verdict(reports[target], skips)
    assert findings == [], "fix these in operator/arclight/*/builders.py, or skip them with " \
        "a reason:\n" + "\n".join(findings)
    assert stale == [], f"these skips no longer match a finding; remove them: {stale}"
    assert passed > 100
