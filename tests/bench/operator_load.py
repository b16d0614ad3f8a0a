"""Load helpers shared by ``bench_operator.py`` and ``tests/controller/test_operator_scale.py``.

The operator runs from a source tree as a subprocess (``kopf run -m controllers --namespace NS
--standalone``); TrainingRuns are created with a plain client; arrivals of Jobs and run
statuses are recorded client-side by watches; API writes are counted from the API server's own
``apiserver_request_total`` (cluster-wide: other clients on a shared cluster add to it).
"""
from __future__ import annotations

import collections
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
HOOK = Path(__file__).resolve().parent / "hook"
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
from kube import NO_NODE_SELECTOR, wait_until

GROUP, VERSION, PLURAL = "arclight.dev", "v1alpha1", "trainingruns"
OWNED = "arclight.dev/owner-kind=TrainingRun"
OWNER_NAME = "arclight.dev/owner-name"
MIN_WRITES = 8  # 7 children (2 ConfigMaps, SA, Role, RoleBinding, gateway Service, Job) + status
#: the children every run needs: (plural, name suffix)
CHILDREN = [("configmaps", "-config"), ("configmaps", "-report"),
            ("serviceaccounts", "-trainer"), ("roles", "-trainer"),
            ("rolebindings", "-trainer"), ("services", "-gateway"), ("jobs", "-trainer-1")]
WRITE_VERBS = {"POST", "PATCH", "APPLY", "DELETE"}  # not PUT (the token controller PUTs SAs)
COUNTED = {"configmaps", "serviceaccounts", "roles", "rolebindings", "services", "jobs",
           "trainingruns"}
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def api_client(kubeconfig: str, pool: int = 16) -> client.ApiClient:
    """An ApiClient for ``kubeconfig`` with a connection pool large enough for ``pool`` threads."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return client.ApiClient(cfg)


def raw_get(api: client.ApiClient, path: str, query: list | None = None,
            timeout: float = 120) -> bytes:
    """GET ``path`` on the API server with ``api``'s credentials; the body."""
    method, url, headers, _, _ = api.param_serialize(
        "GET", path, query_params=query or [], auth_settings=["BearerToken"])
    resp = api.call_api(method, url, header_params=headers, _request_timeout=timeout)
    resp.read()
    if not 200 <= resp.status <= 299:
        raise ApiException.from_response(http_resp=resp, body=None, data=None)
    return resp.data


def discard(resp: Any) -> None:
    """Read and drop a raw (``_preload_content=False``) response, freeing its connection."""
    resp.drain_conn()
    resp.release_conn()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the operator process --------------------------------------------------------------------

class Operator:
    """``kopf run -m controllers`` from ``source`` on one namespace; /proc figures of its pid."""

    def __init__(self, source: Path, kubeconfig: str, namespace: str, log_path: Path,
                 workers: int | None = None) -> None:
        self.source, self.kubeconfig, self.namespace = Path(source), kubeconfig, namespace
        self.log_path, self.workers = log_path, workers
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.counts_path = log_path.with_suffix(".counts.json")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> Operator:
        src = self.source
        env = {**os.environ, "KUBECONFIG": self.kubeconfig,
               "ARCLIGHT_TRAINER_IMAGE": "docker.io/arclight/trainer:bench",
               "ARCLIGHT_METRICS_PORT": str(self.metrics_port),
               # the source tree first: the venv's editable install maps `arclight` to its checkout;
               # hook/ counts the process's own API requests (sitecustomize)
               "PYTHONPATH": os.pathsep.join(str(p) for p in (
                   HOOK, src / "operator", src / "trainer-image", src)),
               "ARCLIGHT_BENCH_COUNTS": str(self.counts_path),
               "ARCLIGHT_WATCH_NAMESPACES": self.namespace}
        env.pop("ARCLIGHT_RESYNC_SECONDS", None)
        if self.workers:
            env["ARCLIGHT_WORKERS"] = str(self.workers)
        kopf = Path(sys.executable).with_name("kopf")
        self.proc = subprocess.Popen(
            [str(kopf), "run", "-m", "controllers", f"--namespace={self.namespace}",
             "--standalone", f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"],
            cwd=src, env=env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout=timeout, what="operator /readyz and /healthz",
                   ignore=(OSError,))
        return self

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"operator exited:\n{self.log_tail()}")
        for port, path in ((self.metrics_port, "readyz"), (self.liveness_port, "healthz")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=2) as resp:
                if resp.status != 200:
                    return False
        return True

    def requests(self) -> collections.Counter:
        """The operator's own API requests so far, keyed like ``scrape_requests``."""
        try:
            raw = json.loads(self.counts_path.read_text())
        except (OSError, ValueError):
            return collections.Counter()
        counts: collections.Counter = collections.Counter()
        for key, n in raw.items():
            verb, resource, code = key.split(" ")
            res, _, sub = resource.partition("/")
            counts[(verb, res, sub, code)] += n
        return counts

    def rss_mb(self) -> float:
        """VmRSS of the kopf process in MB (0 when it is gone)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, AttributeError):
            pass
        return 0.0

    def cpu_seconds(self) -> float:
        """utime + stime of the kopf process (all its threads), in seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metric_lines(self, prefixes: tuple[str, ...] = ("arclight_reconcile_total",
                                                          "arclight_reconcile_errors_total")
                     ) -> dict[str, float]:
        """The operator's own /metrics samples whose names start with ``prefixes``."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith(prefixes)}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class RssSampler(threading.Thread):
    """Samples the operator's RSS every ``interval`` seconds; ``max_mb`` is the peak."""

    def __init__(self, op: Operator, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.op, self.interval, self.max_mb, self.stopped = op, interval, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.max_mb = max(self.max_mb, self.op.rss_mb())


# --- cluster objects -------------------------------------------------------------------------

def ensure_crds(api: client.ApiClient, source: Path) -> None:
    """Create the source tree's CRDs when missing (never replace: others share the cluster)."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted((Path(source) / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names.append(crd["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def established() -> bool:
        return all(any(c.type == "Established" and c.status == "True"
                       for c in ext.read_custom_resource_definition(n).status.conditions or [])
                   for n in names)
    wait_until(established, timeout=30, what="CRDs established")


def create_namespace(api: client.ApiClient, name: str, label: str = "arclight.dev/bench"
                     ) -> None:
    """Create ``name`` and wait until its default ServiceAccount has a token (1.20 needs it)."""
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={label: "true"})))
    wait_until(lambda: core.read_namespaced_service_account("default", name).secrets,
               timeout=60, what=f"the token of {name}/default")


def delete_namespaces(api: client.ApiClient, names: Iterable[str], timeout: float) -> list[str]:
    """Remove the finalizers left on TrainingRuns, delete the namespaces and wait until they
    are gone; return those still there. Call it after the operator stopped: a running kopf
    puts its finalizer back on a live run."""
    core = client.CoreV1Api(api)
    names = list(names)
    held = sum(strip_finalizers(api, ns) for ns in names)
    if held:
        print(f"  removed the finalizers of {held} TrainingRuns", flush=True)
    for name in names:
        try:
            core.delete_namespace(name, _request_timeout=60)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def present() -> list[str]:
        return [n for n in names if core.list_namespace(
            field_selector=f"metadata.name={n}", _request_timeout=60).items]
    deadline = time.monotonic() + timeout
    while (left := present()) and time.monotonic() < deadline:
        time.sleep(2)
    return left


def strip_finalizers(api: client.ApiClient, namespace: str) -> int:
    """Remove the finalizers of every TrainingRun in ``namespace``; how many had some."""
    custom = client.CustomObjectsApi(api)
    try:
        held = [r["metadata"]["name"] for r in list_runs(api, namespace)
                if r["metadata"].get("finalizers")]
    except ApiException as exc:
        if exc.status == 404:
            return 0
        raise

    def strip(name: str) -> None:
        try:
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                  {"metadata": {"finalizers": None}},
                                                  _request_timeout=60)
        except ApiException as exc:
            if exc.status != 404:
                raise
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(strip, held))
    return len(held)


def run_body(name: str) -> dict[str, Any]:
    """A TrainingRun like tests/controller/test_trainingrun.py's make_run (pods never schedule)."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
            "metadata": {"name": name},
            "spec": {"template": "math-solver",
                     "hyperparameters": {"maxSteps": 4, "batchSize": 8},
                     "resources": {"nodeSelector": NO_NODE_SELECTOR}}}


def create_runs(api: client.ApiClient, namespace: str, names: list[str],
                threads: int = 8) -> tuple[dict[str, float], int]:
    """Create the runs from ``threads`` threads: (monotonic time each create returned, by
    name; POSTs sent). A create that fails with 429/5xx is retried (twice); 409 counts as done."""
    custom = client.CustomObjectsApi(api)
    created: dict[str, float] = {}
    posts = [0]

    def create(name: str) -> None:
        for attempt in range(3):
            posts[0] += 1
            try:
                discard(custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, run_body(name),
                    _preload_content=False, _request_timeout=60))
                break
            except ApiException as exc:
                if exc.status == 409 and attempt:
                    break
                if exc.status not in (429, 500, 503, 504) or attempt == 2:
                    raise
            time.sleep(1)
        created[name] = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))
    return created, posts[0]


# --- client-side arrival times ---------------------------------------------------------------

def status_ok(run: dict[str, Any]) -> bool:
    """The run's status is current: observedGeneration == generation and a phase."""
    status = run.get("status") or {}
    return bool(status.get("phase")) and status.get(
        "observedGeneration") == run["metadata"].get("generation")


class Watcher(threading.Thread):
    """List+watch one namespaced collection; ``on_object(obj, t)`` for every object seen."""

    def __init__(self, api: client.ApiClient, group: str, version: str, namespace: str,
                 plural: str, on_object: Callable[[dict, float], None], labels: str = "") -> None:
        super().__init__(daemon=True)
        self.custom, self.on_object = client.CustomObjectsApi(api), on_object
        self.args, self.labels = (group, version, namespace, plural), labels
        self.stopped, self.synced = threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                listed = self.custom.list_namespaced_custom_object(
                    *self.args, label_selector=self.labels, _request_timeout=120)
                now = time.monotonic()
                for obj in listed["items"]:
                    self.on_object(obj, now)
                self.synced.set()
                self.watch(listed["metadata"]["resourceVersion"])
            except Exception as exc:  # noqa: BLE001  (relist after any error, 410 included)
                if not self.stopped.is_set():
                    print(f"  watch {self.args[3]}: {type(exc).__name__}: {exc}; relisting",
                          flush=True)
                    time.sleep(1)

    def watch(self, rv: str) -> None:
        while not self.stopped.is_set():
            stream = watch.Watch()
            for event in stream.stream(self.custom.list_namespaced_custom_object, *self.args,
                                       label_selector=self.labels, resource_version=rv,
                                       allow_watch_bookmarks=True, timeout_seconds=20):
                obj = event["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if event["type"] in ("ADDED", "MODIFIED"):
                    self.on_object(obj, time.monotonic())
                if self.stopped.is_set():
                    return


class Tracker:
    """When each run's trainer Job first appeared and its status first became current."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.job_seen: dict[str, float] = {}
        self.status_seen: dict[str, float] = {}
        self.watchers = [
            Watcher(api, "batch", "v1", namespace, "jobs", self._job, OWNED),
            Watcher(api, GROUP, VERSION, namespace, PLURAL, self._run)]

    def _job(self, job: dict, t: float) -> None:
        name = job["metadata"]["name"]
        if name.endswith("-trainer-1"):
            self.job_seen.setdefault(name[: -len("-trainer-1")], t)

    def _run(self, run: dict, t: float) -> None:
        if status_ok(run):
            self.status_seen.setdefault(run["metadata"]["name"], t)

    def start(self) -> Tracker:
        for w in self.watchers:
            w.start()
        for w in self.watchers:
            if not w.synced.wait(60):
                raise TimeoutError("watches did not list within 60 s")
        return self

    def stop(self) -> None:
        for w in self.watchers:
            w.stopped.set()

    def reconciled(self, name: str) -> float | None:
        """When ``name`` was fully reconciled (Job seen and status current), else None."""
        if name in self.job_seen and name in self.status_seen:
            return max(self.job_seen[name], self.status_seen[name])
        return None

    def wait(self, names: list[str], timeout: float, progress: float = 30) -> list[str]:
        """Wait until every run is fully reconciled; return those that are not (at timeout)."""
        deadline, report = time.monotonic() + timeout, time.monotonic() + progress
        while (left := [n for n in names if self.reconciled(n) is None]) and \
                time.monotonic() < deadline:
            if time.monotonic() > report:
                report += progress
                print(f"  ... {len(names) - len(left)}/{len(names)} fully reconciled", flush=True)
            time.sleep(0.25)
        return left


# --- API writes from the server's /metrics ---------------------------------------------------

def scrape_requests(api: client.ApiClient) -> collections.Counter:
    """``apiserver_request_total`` by (verb, resource, subresource, code), summed over the rest."""
    counts: collections.Counter = collections.Counter()
    for line in raw_get(api, "/metrics").decode().splitlines():
        if line.startswith("apiserver_request_total{"):
            labels_text, value = line[len("apiserver_request_total{"):].rsplit("} ", 1)
            labels = dict(_LABEL.findall(labels_text))
            counts[(labels.get("verb", ""), labels.get("resource", ""),
                    labels.get("subresource", ""), labels.get("code", ""))] += float(value)
    return counts


def write_diff(before: collections.Counter, after: collections.Counter) -> dict[str, Any]:
    """Writes between two scrapes: ``counted`` (operator-relevant kinds), ``events``, by code.

    Keys of ``counted`` and ``events`` are "resource[/subresource] VERB"; values are
    {"total": n, "codes": {code: n}}; ``reset`` is true when a counter went down (the API
    server restarted in between: the diff is then meaningless). Pods and subresources (jobs/status: the job controller;
    serviceaccounts/token) are not counted, trainingruns/status is.
    """
    out: dict[str, Any] = {"counted": {}, "events": {},
                           "reset": any(after.get(k, 0) < n for k, n in before.items())}
    for key in set(after) | set(before):
        verb, resource, sub, code = key
        n = int(after.get(key, 0) - before.get(key, 0))
        if n <= 0 or verb not in WRITE_VERBS:
            continue
        if resource == "events":
            bucket = "events"
        elif resource in COUNTED and (sub == "" or (resource, sub) == ("trainingruns", "status")):
            bucket = "counted"
        else:
            continue
        row = out[bucket].setdefault(f"{resource}{'/' + sub if sub else ''} {verb}",
                                     {"total": 0, "codes": {}})
        row["total"] += n
        row["codes"][code] = row["codes"].get(code, 0) + n
    return out


def verb_totals(before: collections.Counter, after: collections.Counter
                ) -> collections.Counter:
    """All requests between two snapshots, by verb (reads included)."""
    totals: collections.Counter = collections.Counter()
    for key in after:
        totals[key[0]] += int(after[key] - before.get(key, 0))
    return totals


def operator_writes(diff: dict[str, Any], own_creates: int) -> int:
    """Counted writes minus this client's own TrainingRun creates."""
    return sum(r["total"] for r in diff["counted"].values()) - own_creates


def hook_sees_children(own: dict[str, Any], runs: int) -> bool:
    """Whether the in-process count saw at least one write per child of every run (else the
    operator writes through a client the hook does not wrap, and only /metrics is reliable)."""
    return sum(r["total"] for k, r in own["counted"].items()
               if not k.startswith("trainingruns")) >= len(CHILDREN) * runs


def format_breakdown(diff: dict[str, Any], runs: int, own_creates: int) -> str:
    """One line per resource/verb: total, per run, response codes."""
    lines = [("  WARNING: the counters went down (the API server restarted): this diff is "
              "meaningless")] if diff.get("reset") else []
    for bucket in ("counted", "events"):
        for key, row in sorted(diff[bucket].items()):
            total = row["total"] - (own_creates if key == "trainingruns POST" else 0)
            own = f" (minus {own_creates} own creates)" if key == "trainingruns POST" else ""
            codes = ", ".join(f"{c}: {n}" for c, n in sorted(row["codes"].items()))
            lines.append(f"  {'event ' if bucket == 'events' else ''}{key:<28} {total:>7}"
                         f"  {total / max(runs, 1):6.2f}/run  codes {{{codes}}}{own}")
    return "\n".join(lines)


# --- what the user would see -----------------------------------------------------------------

def children_by_run(api: client.ApiClient, namespace: str) -> dict[str, collections.Counter]:
    """For each owner name: how many children of each (plural, suffix) exist."""
    found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for plural in sorted({p for p, _ in CHILDREN}):
        group, version = {"roles": ("rbac.authorization.k8s.io", "v1"),
                          "rolebindings": ("rbac.authorization.k8s.io", "v1"),
                          "jobs": ("batch", "v1")}.get(plural, ("", "v1"))
        path = (f"/api/v1/namespaces/{namespace}/{plural}" if not group else
                f"/apis/{group}/{version}/namespaces/{namespace}/{plural}")
        items = json.loads(raw_get(api, path, [("labelSelector", OWNED)]))["items"]
        for item in items:
            owner = item["metadata"]["labels"][OWNER_NAME]
            suffix = item["metadata"]["name"][len(owner):]
            found[owner][(plural, suffix if (plural, suffix) in CHILDREN else "other")] += 1
    return found


def list_runs(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    return client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _request_timeout=120)["items"]


def operator_events(api: client.ApiClient, namespace: str) -> collections.Counter:
    """Events about TrainingRuns in the namespace, by reason."""
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.kind=TrainingRun", _request_timeout=120)
    return collections.Counter(e.reason for e in events.items)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]
