"""The full local cluster runs workloads: a Ready node, locally built images, pod networking
through a Service (kube-proxy + CNI), and `kubectl logs`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kube import wait_condition, wait_until
from kubernetes import client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def busybox_image(cluster) -> str:
    """A tiny locally built image (FROM scratch + busybox), loaded with `cluster.sh load-image`."""
    built = subprocess.run(
        [str(REPO / "hack/cluster/build-test-image.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    archive, image = built.stdout.split()
    subprocess.run(
        [str(REPO / "hack/cluster.sh"), "load-image", archive],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return image


def container(image: str, script: str, **kw) -> client.V1Container:
    return client.V1Container(
        name="main", image=image, image_pull_policy="Never", command=["sh", "-c", script], **kw
    )


def test_one_ready_node(cluster):
    nodes = client.CoreV1Api(cluster.api).list_node().items
    assert len(nodes) == 1
    ready = [c for c in nodes[0].status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    internal = [a.address for a in nodes[0].status.addresses if a.type == "InternalIP"]
    assert internal and not internal[0].startswith("127."), internal


def test_job_reaches_a_service_and_kubectl_logs_shows_its_output(cluster, namespace, busybox_image):
    core, batch = client.CoreV1Api(cluster.api), client.BatchV1Api(cluster.api)
    labels = {"app": "pong"}
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="pong", labels=labels),
            spec=client.V1PodSpec(
                containers=[
                    container(
                        busybox_image,
                        "mkdir -p /www && echo pong-$POD_NAME > /www/ping && exec httpd -f -p 8080 -h /www",
                        env=[
                            client.V1EnvVar(
                                name="POD_NAME",
                                value_from=client.V1EnvVarSource(
                                    field_ref=client.V1ObjectFieldSelector(
                                        field_path="metadata.name"
                                    )
                                ),
                            )
                        ],
                        ports=[client.V1ContainerPort(container_port=8080)],
                        readiness_probe=client.V1Probe(
                            tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=1
                        ),
                    )
                ]
            ),
        ),
    )
    svc = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="pong"),
            spec=client.V1ServiceSpec(
                selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )
    wait_condition(lambda: core.read_namespaced_pod("pong", namespace), "Ready", timeout=90)

    batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="hello"),
            spec=client.V1JobSpec(
                backoff_limit=0,
                active_deadline_seconds=90,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            container(
                                busybox_image,
                                # Pod -> Service -> pod, then pod -> the API server's Service.
                                # kube-proxy programs a new Service within seconds: retry, each
                                # try bounded by busybox `timeout` (its wget -T crashes).
                                f"echo hello-from-{namespace} && for i in $(seq 30); do"
                                f" timeout 3 wget -q -O- http://{svc.spec.cluster_ip}/ping 2>/dev/null"
                                " && break; sleep 1; done"
                                " && timeout 10 wget -q -O- https://$KUBERNETES_SERVICE_HOST/healthz 2>/dev/null",
                            )
                        ],
                    )
                ),
            ),
        ),
    )
    wait_condition(lambda: batch.read_namespaced_job("hello", namespace), "Complete", timeout=120)

    logs = wait_until(
        lambda: cluster.kubectl("-n", namespace, "logs", "job/hello").stdout,
        timeout=30,
        what="kubectl logs job/hello",
    )
    assert logs.split() == [f"hello-from-{namespace}", "pong-pong", "ok"]
