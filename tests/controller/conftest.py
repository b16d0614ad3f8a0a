"""The operator as a real subprocess (``kopf run -m controllers``) against the test cluster."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from kube import wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
KOPF = Path(sys.executable).with_name("kopf")
#: The tree the operator runs from (its controllers/ and operator/): this checkout, or another
#: one (e.g. `git archive HEAD operator controllers`) to test a different operator version.
OPERATOR_SRC = Path(os.environ.get("ARCLIGHT_TEST_OPERATOR_SRC") or REPO).resolve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def crds(cluster) -> list[str]:
    """Apply the generated CRDs (crds/*.yaml) and wait until they are established."""
    ext = client.ApiextensionsV1Api(cluster.api)
    names = []
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names.append(crd["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(crd["metadata"]["name"])
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)

    def established() -> bool:
        for name in names:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    wait_until(established, timeout=30, what="CRDs established")
    return names


class OperatorProcess:
    """``kopf run`` in a subprocess; its log goes to a file shown when a test fails."""

    def __init__(self, kubeconfig: str, log_path: Path,
                 namespaces: Sequence[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """``namespaces``: watch only these (``--namespace`` each); default all namespaces.
        ``env``: extra environment (e.g. ``ARCLIGHT_*`` settings) on top of the defaults."""
        self.kubeconfig, self.log_path = kubeconfig, log_path
        self.namespaces = tuple(namespaces or ())
        self.extra_env = dict(env or {})
        self.metrics_port = _free_port()
        self.liveness_port = _free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> None:
        """Start the operator; with ``wait`` (default) return once /readyz and /healthz answer."""
        env = {**os.environ, "KUBECONFIG": self.kubeconfig,
               "ARCLIGHT_METRICS_PORT": str(self.metrics_port),
               "ARCLIGHT_TRAINER_IMAGE": "docker.io/arclight/trainer:test",
               "PYTHONPATH": os.pathsep.join([str(OPERATOR_SRC), str(OPERATOR_SRC / "operator")]),
               "ARCLIGHT_WATCH_NAMESPACES": ",".join(self.namespaces),
               **self.extra_env}
        scope = ([arg for ns in self.namespaces for arg in ("--namespace", ns)]
                 if self.namespaces else ["--all-namespaces"])
        with self.log_path.open("ab") as log:
            log.write(f"--- operator start ({' '.join(scope)})\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(KOPF), "run", "-m", "controllers", *scope, "--standalone",
                 f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"],
                cwd=OPERATOR_SRC, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self.ready, timeout=timeout, what="operator /readyz and /healthz")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"operator exited:\n{self.log_tail()}")
        try:
            for url in (f"http://127.0.0.1:{self.metrics_port}/readyz",
                        f"http://127.0.0.1:{self.liveness_port}/healthz"):
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status != 200:
                        return False
        except OSError:
            return False
        return True

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no cleanup handlers; wait until the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            with self.log_path.open("ab") as log:
                log.write(b"--- operator killed (SIGKILL)\n")
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


#: Opt-in for a cluster shared with other test sessions: ARCLIGHT_TEST_OWN_NAMESPACES=1 gives
#: this session's namespaces a common prefix and makes the module-wide operator watch only
#: those (a kopf glob) instead of all namespaces.
OWN_NAMESPACES = os.environ.get("ARCLIGHT_TEST_OWN_NAMESPACES") == "1"
SESSION_PREFIX = f"t-{secrets.token_hex(2)}"

if OWN_NAMESPACES:
    @pytest.fixture
    def namespace(cluster) -> Iterator[str]:
        """tests/conftest.py's fresh namespace, named ``t-<session><random>``."""
        core = client.CoreV1Api(cluster.api)
        name = f"{SESSION_PREFIX}{secrets.token_hex(2)}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name, labels={"arclight.dev/test": "true"})))
        wait_until(lambda: core.read_namespaced_service_account("default", name).secrets,
                   timeout=30, what=f"the token of {name}/default")
        yield name
        core.delete_namespace(name, _request_timeout=30)


@pytest.fixture(scope="module")
def operator(cluster, crds, tmp_path_factory) -> Iterator[OperatorProcess]:
    """The running operator, one per test module (tests may restart it). Module scope keeps it
    from outliving the controller tests: e2e tests run the operator the chart installs."""
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "kopf.log",
                           namespaces=[f"{SESSION_PREFIX}*"] if OWN_NAMESPACES else None)
    proc.start()
    yield proc
    proc.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    op = item.funcargs.get("operator") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and isinstance(op, OperatorProcess):
        report.sections.append(("operator log", op.log_tail()))


@pytest.fixture
def start_operator(tmp_path) -> Iterator:
    """Start extra operator processes with a given kubeconfig (stopped after the test)."""
    started: list[OperatorProcess] = []

    def start(kubeconfig: str, namespaces: Sequence[str] | None = None,
              env: Mapping[str, str] | None = None) -> OperatorProcess:
        proc = OperatorProcess(kubeconfig, tmp_path / f"kopf-{len(started)}.log",
                               namespaces=namespaces, env=env)
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.stop()
