"""Reliability of the TrainingRun controller: kill -9 at random moments, an API server restart.

Black-box: the tests look only at what a user sees (the runs, their children, status,
conditions and Events), so they hold for any operator implementation. As in
test_trainingrun.py, the tests play the kubelet (they write ``pods/status``); the job
controller and the garbage collector are the real ones; the runs' pods can never schedule.

The operators started here watch only the test's namespace (others share the cluster).
``ARCLIGHT_TEST_SEED=N`` replays one schedule of the kill test (the seed is printed).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kube import NO_NODE_SELECTOR, find_condition, wait_until
from kubernetes import client

pytestmark = pytest.mark.controller
GROUP, VERSION, PLURAL = "arclight.dev", "v1alpha1", "trainingruns"
REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "hack" / "cluster.sh"
OWNER_NAME = "arclight.dev/owner-name"
ATTEMPT = "arclight.dev/attempt"

#: Upper bound on the Events about one run (involvedObject.name == the run) over the whole
#: kill test. The longest lifecycle driven here (OOMKilled on attempt 1, then attempt 2 to its
#: end) has 12 changes a user is told about, one Event each: AttemptStarted 1, Admitted,
#: Running=False (Starting), Running=True (Training), Degraded=True (OutOfMemory), Retrying,
#: AttemptStarted 2, Degraded reason Retrying, Starting, Training, and the end (Succeeded or
#: Failed, and Running=False). The 3 spare allow a kill -9 that lands between the Events of a
#: pass and the status recording it to repeat a few. An operator that announces anything
#: again per reconcile (dozens per run here) or per restart (4-6 here) exceeds it.
EVENT_LIMIT = 15


# --- helpers -------------------------------------------------------------------------------

def custom(cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def make_run(cluster, namespace, name=None, **spec) -> str:
    name = name or f"run-{secrets.token_hex(3)}"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
            "metadata": {"name": name},
            "spec": {"template": "math-solver",
                     "hyperparameters": {"maxSteps": 4, "batchSize": 8},
                     "resources": {"nodeSelector": NO_NODE_SELECTOR}, **spec}}
    custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return name


def get_run(cluster, namespace, name) -> dict:
    return custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def list_runs(cluster, namespace) -> dict[str, dict]:
    items = custom(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace,
                                                          PLURAL)["items"]
    return {r["metadata"]["name"]: r for r in items}


def set_pod_status(cluster, namespace, pod_name, phase, state, ready=False) -> None:
    """Write pod status as the kubelet would."""
    status = {"phase": phase, "containerStatuses": [{
        "name": "trainer", "image": "docker.io/arclight/trainer:test", "imageID": "",
        "ready": ready, "restartCount": 0, "state": state}]}
    client.CoreV1Api(cluster.api).patch_namespaced_pod_status(pod_name, namespace,
                                                              {"status": status})


def pod_running(cluster, namespace, pod_name) -> None:
    set_pod_status(cluster, namespace, pod_name, "Running",
                   {"running": {"startedAt": "2024-01-01T00:00:00Z"}}, ready=True)


def pod_terminated(cluster, namespace, pod_name, exit_code, reason, message="") -> None:
    """The trainer container ended; the real job controller then marks the Job (backoffLimit 0)
    Failed, or Complete for exit code 0."""
    phase = "Succeeded" if exit_code == 0 else "Failed"
    set_pod_status(cluster, namespace, pod_name, phase, {"terminated": {
        "exitCode": exit_code, "reason": reason, "message": message,
        "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:01:00Z"}})


def trainer_pods(cluster, namespace) -> dict[str, str]:
    """Job name -> the name of its (first) pod."""
    pods = client.CoreV1Api(cluster.api).list_namespaced_pod(
        namespace, label_selector="job-name").items
    found: dict[str, str] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
        found.setdefault(pod.metadata.labels["job-name"], pod.metadata.name)
    return found


@dataclasses.dataclass(frozen=True)
class Child:
    kind: str
    name: str
    labels: dict
    owners: tuple[str, ...]  # uids of the TrainingRuns in its ownerReferences


def children(cluster, namespace) -> list[Child]:
    """Every object in the namespace of the kinds a run's children are (and the pods)."""
    core, rbac = client.CoreV1Api(cluster.api), client.RbacAuthorizationV1Api(cluster.api)
    listings = {"Job": client.BatchV1Api(cluster.api).list_namespaced_job,
                "Pod": core.list_namespaced_pod, "ConfigMap": core.list_namespaced_config_map,
                "ServiceAccount": core.list_namespaced_service_account,
                "Role": rbac.list_namespaced_role, "RoleBinding": rbac.list_namespaced_role_binding,
                "Service": core.list_namespaced_service}
    return [Child(kind, obj.metadata.name, obj.metadata.labels or {},
                  tuple(ref.uid for ref in obj.metadata.owner_references or []
                        if ref.kind == "TrainingRun"))
            for kind, list_ in listings.items() for obj in list_(namespace).items]


def owned_by(objs: list[Child]) -> dict[str, list[Child]]:
    """TrainingRun uid -> the objects it owns."""
    owned: dict[str, list[Child]] = collections.defaultdict(list)
    for obj in objs:
        for uid in obj.owners:
            owned[uid].append(obj)
    return owned


def leftovers(name: str, uid: str, live: dict[str, dict], objs: list[Child]) -> list[str]:
    """What is left of a deleted run: the run itself, anything labelled as its child or
    owned by it."""
    found = [f"TrainingRun/{name}"] if name in live else []
    found += [f"{o.kind}/{o.name}" for o in objs
              if o.labels.get(OWNER_NAME) == name or uid in o.owners]
    return sorted(set(found))


def run_events(cluster, namespace) -> dict[str, list[tuple[str, str]]]:
    """Run name -> [(type, reason)] of the Events about it (involvedObject.name == run)."""
    by_run: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for event in client.CoreV1Api(cluster.api).list_namespaced_event(namespace).items:
        if event.involved_object.kind == "TrainingRun":
            by_run[event.involved_object.name] += [(event.type, event.reason)] * (
                event.count or 1)
    return by_run


@pytest.fixture
def operator(cluster, crds, namespace, start_operator) -> Iterator:
    """An operator of this test's own that watches only its namespace (it overrides the
    module-wide one, so a failing test still shows its log).

    On the way out it deletes the runs left (an unfinished run may hold a finalizer only a
    running operator removes) so that the namespace can go.
    """
    proc = start_operator(cluster.kubeconfig, namespaces=[namespace])
    yield proc
    try:
        if not proc.running:
            proc.start()
        custom(cluster).delete_collection_namespaced_custom_object(GROUP, VERSION, namespace,
                                                                   PLURAL)
        wait_until(lambda: not list_runs(cluster, namespace), 30, what="the runs to go")
    except Exception:  # noqa: BLE001  (hygiene only: cleanup never hides the test's result)
        for name in list_runs(cluster, namespace):
            custom(cluster).patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": None}})


# --- a. kill -9 at random moments ----------------------------------------------------------

@dataclasses.dataclass
class Step:
    """One thing the test does to a run (as the user or the kubelet)."""
    what: str           # create | run | oom | fail | diverge | succeed | delete
    attempt: int = 1


#: name -> (count, steps, expected phase, expected attempts, expected terminal reason)
PLANS: dict[str, tuple[int, list[Step], str | None, int, str | None]] = {
    "ok": (10, [Step("create"), Step("run"), Step("succeed")], "Succeeded", 1, "Completed"),
    "retry-ok": (7, [Step("create"), Step("run"), Step("oom"), Step("run", 2),
                     Step("succeed", 2)], "Succeeded", 2, "Completed"),
    "fail": (3, [Step("create"), Step("run"), Step("fail")], "Failed", 1, "DatasetInvalid"),
    "retry-fail": (3, [Step("create"), Step("run"), Step("oom"), Step("run", 2),
                       Step("diverge", 2)], "Failed", 2, "Diverged"),
    "delete-running": (4, [Step("create"), Step("run"), Step("delete")], None, 0, None),
    "delete-done": (3, [Step("create"), Step("run"), Step("succeed"), Step("delete")],
                    None, 0, None),
}
DIVERGED = json.dumps({"reason": "Diverged", "message": "Loss became NaN at step 3.",
                       "suggestions": ["Lower spec.hyperparameters.learningRate."]})
STALL_TIMEOUT = 60  # no step possible for this long: the operator lost work (no resync needed)
DRIVE_TIMEOUT = 300  # the whole lifecycle, kills included (about 70-120 s on 2 cores)
SETTLE_TIMEOUT = 60  # after the last step: every run in its final state, deleted ones gone


@dataclasses.dataclass
class Run:
    name: str
    plan: str
    steps: list[Step]
    done: int = 0
    uid: str = ""

    @property
    def next(self) -> Step | None:
        return self.steps[self.done] if self.done < len(self.steps) else None


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(cluster, namespace, operator):
    seed = int(os.environ.get("ARCLIGHT_TEST_SEED") or secrets.randbelow(2**31))
    rng = random.Random(seed)
    print(f"\nkill -9 test: seed={seed} (rerun with ARCLIGHT_TEST_SEED={seed})")
    plans = [plan for plan, (count, *_rest) in PLANS.items() for _ in range(count)]
    rng.shuffle(plans)
    runs = {f"rel-{i:02d}": Run(f"rel-{i:02d}", plan, list(PLANS[plan][1]))
            for i, plan in enumerate(plans)}
    total_steps = sum(len(r.steps) for r in runs.values())
    kills_at = sorted(rng.sample(range(3, total_steps - 3), rng.randint(4, 6)))
    print(f"  {len(runs)} runs, {total_steps} steps; kill -9 after steps {kills_at}")
    t0 = time.monotonic()
    timeline: list[str] = []

    def note(line: str) -> None:
        timeline.append(f"{time.monotonic() - t0:6.1f}s {line}")

    def ready(run: Run, step: Step, pods: dict[str, str], live: dict[str, dict]) -> bool:
        """Whether ``step`` can be taken now (what it acts on exists)."""
        if step.what == "create":
            return True
        if step.what == "run":
            return f"{run.name}-trainer-{step.attempt}" in pods
        if step.what == "delete" and run.plan == "delete-done":
            return ((live.get(run.name) or {}).get("status") or {}).get("phase") == "Succeeded"
        return True

    def take(run: Run, step: Step, pods: dict[str, str]) -> None:
        pod = pods.get(f"{run.name}-trainer-{step.attempt}", "")
        if step.what == "create":
            retry = {"maxAttempts": 2, "autoRemediate": True}
            make_run(cluster, namespace, run.name, retry=retry)
            run.uid = get_run(cluster, namespace, run.name)["metadata"]["uid"]
        elif step.what == "run":
            pod_running(cluster, namespace, pod)
        elif step.what == "oom":
            pod_terminated(cluster, namespace, pod, 137, "OOMKilled")
        elif step.what == "fail":
            pod_terminated(cluster, namespace, pod, 2, "Error")
        elif step.what == "diverge":
            pod_terminated(cluster, namespace, pod, 3, "Error", DIVERGED)
        elif step.what == "succeed":
            pod_terminated(cluster, namespace, pod, 0, "Completed")
        elif step.what == "delete":
            custom(cluster).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                            run.name)
        run.done += 1
        note(f"{run.name} {step.what}({step.attempt})")

    taken, kills, down_until = 0, 0, None
    deadline = time.monotonic() + DRIVE_TIMEOUT
    progress_at = time.monotonic()
    while any(r.next for r in runs.values()):
        now = time.monotonic()
        if now > deadline or now - progress_at > STALL_TIMEOUT:
            stuck = {r.name: f"{r.next.what}({r.next.attempt})" for r in runs.values() if r.next}
            why = (f"no step possible for {STALL_TIMEOUT}s" if now <= deadline
                   else f"the lifecycle did not finish in {DRIVE_TIMEOUT}s")
            pytest.fail(f"seed={seed}: {why}; runs still waiting for the operator: {stuck}\n"
                        + "\n".join(timeline))
        if down_until is not None and time.monotonic() >= down_until:
            operator.start(wait=False)
            note("operator restarted")
            down_until = None
        pods, live = trainer_pods(cluster, namespace), list_runs(cluster, namespace)
        candidates = [r for r in runs.values() if r.next and ready(r, r.next, pods, live)]
        rng.shuffle(candidates)
        for run in candidates[:rng.randint(1, 6)]:
            take(run, run.next, pods)
            taken += 1
            progress_at = time.monotonic()
            if kills_at and taken >= kills_at[0] and down_until is None:
                if not operator.running:
                    break
                # Only a started operator (watches up) is worth killing.
                operator.wait_ready()
                time.sleep(rng.uniform(0.0, 0.8))
                operator.kill()
                kills += 1
                kills_at.pop(0)
                downtime = rng.uniform(0.3, 3.0)
                note(f"operator killed (kill -9 #{kills}); down for {downtime:.1f}s")
                down_until = time.monotonic() + downtime
                break
        time.sleep(rng.uniform(0.1, 0.4))
    if down_until is not None:
        operator.start(wait=False)
        note("operator restarted")
    operator.wait_ready()
    driven = time.monotonic() - t0
    assert kills >= 4, f"seed={seed}: only {kills} kills happened"

    # --- every run ends where it was driven; deleted runs and their children are gone ----
    survivors = {n: r for n, r in runs.items() if PLANS[r.plan][2] is not None}
    deleted = {n: r for n, r in runs.items() if PLANS[r.plan][2] is None}

    def settled() -> dict[str, str]:
        live, objs = list_runs(cluster, namespace), children(cluster, namespace)
        wrong = {}
        for name, run in survivors.items():
            _, _, phase, attempts, reason = PLANS[run.plan]
            status = (live.get(name) or {}).get("status") or {}
            cond = find_condition(live.get(name) or {}, phase)
            got = (status.get("phase"), status.get("attempts"),
                   cond and cond["status"], cond and cond["reason"])
            if got != (phase, attempts, "True", reason):
                wrong[name] = f"want {(phase, attempts, 'True', reason)}, got {got}"
        for name, run in deleted.items():
            if left := leftovers(name, run.uid, live, objs):
                wrong[name] = f"deleted, but still there: {left}"
        return wrong

    try:
        wait_until(lambda: not settled(), SETTLE_TIMEOUT, interval=1,
                   what="every run in the state the test drove it to")
    except AssertionError:
        pytest.fail(f"seed={seed}: lost status or garbage left: {settled()}\n"
                    + "\n".join(timeline))
    settled_s = time.monotonic() - t0 - driven

    # --- no duplicate child --------------------------------------------------------------
    live = list_runs(cluster, namespace)
    owned = owned_by(children(cluster, namespace))
    problems = []
    for name, run in survivors.items():
        attempts = PLANS[run.plan][3]
        by_kind = collections.defaultdict(list)
        for child in owned.get(live[name]["metadata"]["uid"], []):
            by_kind[child.kind].append((child.name, child.labels))
        jobs = sorted(by_kind.pop("Job", []))
        job_attempts = sorted(int(labels.get(ATTEMPT, 0)) for _, labels in jobs)
        if job_attempts != list(range(1, attempts + 1)) or sorted(j for j, _ in jobs) != sorted(
                f"{name}-trainer-{i}" for i in range(1, attempts + 1)):
            problems.append(f"{name}: Jobs {[(j, l.get(ATTEMPT)) for j, l in jobs]}, want "
                            f"one per attempt 1..{attempts}")
        want = {"ConfigMap": [f"{name}-config", f"{name}-report"],
                "ServiceAccount": [f"{name}-trainer"], "Role": [f"{name}-trainer"],
                "RoleBinding": [f"{name}-trainer"], "Service": [f"{name}-gateway"]}
        got = {kind: sorted(c for c, _ in items) for kind, items in by_kind.items()}
        if got != want:
            problems.append(f"{name}: children {got}, want {want}")
    assert not problems, f"seed={seed}: duplicate or missing children:\n" + "\n".join(problems)

    # --- no Event storm ------------------------------------------------------------------
    events = run_events(cluster, namespace)
    counts = {name: len(events.get(name, [])) for name in runs}
    distribution = collections.Counter(counts.values())
    per_plan = {plan: sorted(counts[n] for n, r in runs.items() if r.plan == plan)
                for plan in PLANS}
    worst = max(counts, key=counts.get)
    print(f"  driven in {driven:.0f}s with {kills} kills, settled {settled_s:.0f}s later")
    print(f"  Events per run (count: runs): {dict(sorted(distribution.items()))}")
    print(f"  Events per run by plan: {per_plan}")
    print(f"  most: {worst} ({runs[worst].plan}) {counts[worst]}: "
          f"{collections.Counter(r for _, r in events.get(worst, []))}")
    storms = {n: c for n, c in counts.items() if c > EVENT_LIMIT}
    assert not storms, (f"seed={seed}: more than {EVENT_LIMIT} Events about a run: {storms}; "
                        f"{worst}: {events.get(worst)}")


# --- b. the API server restarted under a running operator ----------------------------------

def _local_cluster_kubeconfig() -> str | None:
    out = subprocess.run([str(CLUSTER_SH), "kubeconfig"], capture_output=True, text=True,
                         timeout=30, check=False)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout else None


def _api_ready(cluster) -> bool:
    """GET /readyz (open to any client) through the cluster client's connection pool."""
    url = f"{cluster.api.configuration.host}/readyz"
    return cluster.api.rest_client.request("GET", url, _request_timeout=2).status == 200


def _within(deadline: float, predicate: Callable[[], object], what: str) -> object:
    return wait_until(predicate, max(deadline - time.monotonic(), 0.1), interval=0.2, what=what)


def test_operator_recovers_from_an_api_server_restart(cluster, namespace, operator):
    local = _local_cluster_kubeconfig()
    if local is None or os.path.realpath(local) != os.path.realpath(cluster.kubeconfig):
        pytest.skip("KUBECONFIG points at a cluster hack/cluster.sh does not run; "
                    "its API server cannot be restarted from here")
    jobs = client.BatchV1Api(cluster.api)
    before = make_run(cluster, namespace)
    wait_until(lambda: get_run(cluster, namespace, before).get("status", {}).get("attempts"),
               45, what=f"{before} reconciled before the restart")

    started = time.monotonic()
    restart = subprocess.run([str(CLUSTER_SH), "restart-apiserver"], capture_output=True,
                             text=True, timeout=300, check=False)
    if restart.returncode == 2:
        pytest.skip(f"hack/cluster.sh restart-apiserver: {restart.stderr.strip()}")
    assert restart.returncode == 0, f"restart-apiserver failed:\n{restart.stderr[-3000:]}"
    wait_until(lambda: _api_ready(cluster), 30, interval=0.2, what="/readyz after the restart")
    ready_at = time.monotonic()
    deadline = ready_at + 10
    print(f"\nAPI server restarted and ready in {ready_at - started:.1f}s")

    # A new run is reconciled: status and its first Job.
    after = _within(deadline, lambda: make_run(cluster, namespace), "creating a run")
    _within(deadline, lambda: (get_run(cluster, namespace, after).get("status") or {})
            .get("attempts") == 1, f"{after}: status.attempts=1")
    _within(deadline, lambda: find_condition(get_run(cluster, namespace, after), "Admitted")
            and find_condition(get_run(cluster, namespace, after), "Admitted")["status"]
            == "True", f"{after}: Admitted=True")
    _within(deadline, lambda: jobs.read_namespaced_job(f"{after}-trainer-1", namespace),
            f"Job {after}-trainer-1")
    reconciled_s = time.monotonic() - ready_at
    # The children of a run from before the restart are watched again too.
    pod = _within(deadline, lambda: trainer_pods(cluster, namespace).get(f"{before}-trainer-1"),
                  f"the pod of {before}-trainer-1")
    pod_running(cluster, namespace, pod)
    _within(deadline, lambda: (c := find_condition(get_run(cluster, namespace, before),
                                                   "Running")) and c["status"] == "True",
            f"{before}: Running=True after its pod started")
    print(f"new run reconciled {reconciled_s:.1f}s after /readyz; old run's pod change seen "
          f"{time.monotonic() - ready_at:.1f}s after")
    assert operator.running, "the operator exited after the API server restart"
