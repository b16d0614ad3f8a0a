"""The chart's ledger values, rendered by Helm's own engine: the bundled Postgres
(ledger.bundled) on and off, the DSN the operator reads, the CA of an external ledger, and the
NetworkPolicies around the bundled one."""
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml
from helm_python.chart import Chart
from helm_python.errors import HelmValuesError
from test_chart import CHART, DIGEST, ROOT, env_of, find, policies, render

pytestmark = pytest.mark.unit
BUNDLED = {"ledger": {"bundled": {"enabled": True}}}
POSTGRES = "arclight-postgres"


def env_entries(docs) -> dict:
    (dep,) = find(docs, "Deployment")
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def secret_data(docs) -> dict:
    (secret,) = find(docs, "Secret", POSTGRES)
    return secret["stringData"]


def test_no_ledger_by_default():
    docs = render()
    assert not find(docs, "StatefulSet") and not find(docs, "Secret")
    assert not find(docs, "Service", POSTGRES)
    env = env_of(docs)
    assert "ARCLIGHT_LEDGER_DSN" not in env and "PGHOSTADDR" not in env


def test_external_ledger_dsn_from_its_secret():
    docs = render({"ledger": {"dsnSecret": {"name": "pg", "key": "url"}}})
    assert env_entries(docs)["ARCLIGHT_LEDGER_DSN"]["valueFrom"] == {
        "secretKeyRef": {"name": "pg", "key": "url"}}
    assert "PGHOSTADDR" not in env_of(docs) and not find(docs, "StatefulSet")


def test_external_ledger_ca_secret_is_mounted_read_only():
    (dep,) = find(render({"ledger": {"dsnSecret": {"name": "pg"}, "tls": {"caSecret": "pg-ca"}}}),
                  "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "ledger-tls"]
    assert mount == {"name": "ledger-tls", "mountPath": "/etc/arclight/ledger-tls",
                     "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "ledger-tls"]
    assert volume["secret"] == {"secretName": "pg-ca", "defaultMode": 0o444}
    (dep,) = find(render(), "Deployment")
    assert [v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]] == ["tmp"]


def test_bundled_objects():
    docs = render(BUNDLED)
    (sts,) = find(docs, "StatefulSet", POSTGRES)
    (svc,) = find(docs, "Service", POSTGRES)
    spec = sts["spec"]
    assert spec["replicas"] == 1 and spec["serviceName"] == POSTGRES
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert svc["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": "postgres",
                                     "protocol": "TCP"}]
    # The operator's selectors (Deployment, metrics Service, policies) never pick Postgres.
    (dep,) = find(docs, "Deployment")
    assert not dep["spec"]["selector"]["matchLabels"].items() <= labels.items()

    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65432,
                                      "runAsGroup": 65432, "fsGroup": 65432,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["image"] == "docker.io/arclight/postgres:dev"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                            "capabilities": {"drop": ["ALL"]}}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready"
        assert "--host=127.0.0.1" in container[probe]["exec"]["command"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    # Writable: the data volume and the socket directory; the password is a read-only file.
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["data"]["mountPath"] == "/var/lib/postgresql/data"
    assert mounts["run"]["mountPath"] == "/var/run/postgresql"
    assert mounts["password"]["readOnly"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["POSTGRES_PASSWORD_FILE"] == mounts["password"]["mountPath"] + "/password"
    assert env["PGDATA"].startswith(mounts["data"]["mountPath"] + "/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["run"] == {"name": "run", "emptyDir": {}}
    assert volumes["password"]["secret"]["secretName"] == POSTGRES
    assert volumes["password"]["secret"]["items"] == [{"key": "password", "path": "password"}]

    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "2Gi"}}}


def test_bundled_secret_and_the_operator_dsn():
    docs = render(BUNDLED)
    data = secret_data(docs)
    password = data["password"]
    assert len(password) == 32 and password.isalnum()
    dsn = urlsplit(data["dsn"])
    assert (dsn.scheme, dsn.username, dsn.password, dsn.port, dsn.path) == (
        "postgresql", "arclight", password, 5432, "/arclight")
    assert dsn.hostname == f"{POSTGRES}.arclight-system.svc" and dsn.query == "sslmode=disable"
    env = env_entries(docs)
    assert env["ARCLIGHT_LEDGER_DSN"]["valueFrom"] == {
        "secretKeyRef": {"name": POSTGRES, "key": "dsn"}}
    # The ClusterIP from the Service's variable: no cluster DNS needed.
    assert env["PGHOSTADDR"]["value"] == "$(ARCLIGHT_POSTGRES_SERVICE_HOST)"
    names = list(env)
    assert names.index("PGHOSTADDR") > names.index("ARCLIGHT_LEDGER_DSN")
    # Without a cluster (no lookup) every render makes a new password.
    assert secret_data(render(BUNDLED))["password"] != password


def test_bundled_values():
    docs = render({"ledger": {"bundled": {
        "enabled": True, "image": {"repository": "r.example/pg", "tag": "15", "digest": DIGEST},
        "storage": {"size": "10Gi", "storageClassName": "fast"},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}})
    (sts,) = find(docs, "StatefulSet", POSTGRES)
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"r.example/pg@{DIGEST}"
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}  # merged
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"] == {"requests": {"storage": "10Gi"}}


def test_bundled_and_an_external_dsn_exclude_each_other():
    with Chart.load(CHART) as chart:
        with pytest.raises(Exception, match="exclude each other"):
            chart.render(values={"ledger": {"bundled": {"enabled": True},
                                            "dsnSecret": {"name": "pg"}}},
                         name="arclight", namespace="x")
        for bad in ({"bundled": {"storage": {"size": "lots"}}},
                    {"bundled": {"image": {"digest": "latest"}}},
                    {"bundled": {"replicas": 2}}, {"tls": {"caSecret": "Not_A_Name"}}):
            with pytest.raises(HelmValuesError, match="ledger"):
                chart.render(values={"ledger": bad}, name="arclight", namespace="x")


def test_network_policies_let_only_the_operator_reach_postgres():
    docs = render({**BUNDLED, "networkPolicy": {"enabled": True}})
    found = policies(docs)
    assert set(found) == {("arclight-system", "arclight-operator"),
                          ("arclight-system", "arclight-postgres")}
    (sts,) = find(docs, "StatefulSet", POSTGRES)
    (dep,) = find(docs, "Deployment")
    postgres_labels = sts["spec"]["template"]["metadata"]["labels"]
    operator_labels = dep["spec"]["template"]["metadata"]["labels"]
    policy = found[("arclight-system", "arclight-postgres")]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= postgres_labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert rule["ports"] == [{"port": 5432, "protocol": "TCP"}]
    operator = found[("arclight-system", "arclight-operator")]["spec"]
    egress = operator["egress"]
    assert len(egress) == 4  # the API server, DNS, the ledger, then the model servers
    assert egress[2] == {"ports": [{"port": 5432, "protocol": "TCP"}], "to": [
        {"podSelector": {"matchLabels": policy["podSelector"]["matchLabels"]}}]}
    # Without the bundled ledger the operator's egress has no ledger rule.
    assert len(policies(render({"networkPolicy": {"enabled": True}}))[
        ("arclight-system", "arclight-operator")]["spec"]["egress"]) == 3


def test_operator_egress_to_an_external_ledger():
    external = {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}],
                "ports": [{"port": 5432, "protocol": "TCP"}]}
    docs = render({"ledger": {"dsnSecret": {"name": "pg"}},
                   "networkPolicy": {"enabled": True, "operator": {"egress": [external]}}})
    operator = policies(docs)[("arclight-system", "arclight-operator")]["spec"]
    assert operator["egress"][3:] == [external]


def test_template_prints_the_bundled_objects():
    """hack/helm.py template (what the e2e test renders first) knows the values."""
    out = subprocess.run([sys.executable, str(ROOT / "hack" / "helm.py"), "template",
                          "--set", "ledger.bundled.enabled=true"],
                         check=True, capture_output=True, text=True).stdout
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}
    assert {("StatefulSet", POSTGRES), ("Service", POSTGRES), ("Secret", POSTGRES)} <= kinds
