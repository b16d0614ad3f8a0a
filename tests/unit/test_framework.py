"""The framework's pure parts: the coalescing work queue, the child index's write overlay,
the owner-object store, the status merge patch, the desired-hash of children and the removal of kopf's leftovers."""
from __future__ import annotations

import threading
import time

import pytest
from arclight.framework.apply import HASH_ANNOTATION, manifest_hash, merge_diff, with_hash
from arclight.framework.frame import changed_meanwhile, legacy_cleanup
from arclight.framework.index import ChildIndex, owner_key, slim
from arclight.framework.objects import LatestObjects
from arclight.framework.queue import WorkQueue

pytestmark = pytest.mark.unit
OWNER = ("TrainingRun", "ns", "r")


def child(name: str, version: int, kind: str = "ConfigMap", **extra) -> dict:
    return {"apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version),
                         "labels": {"arclight.dev/owner-kind": "TrainingRun",
                                    "arclight.dev/owner-name": "r"}}, **extra}


# --- the work queue ----------------------------------------------------------------------------

def test_a_burst_of_events_for_one_key_is_one_pass():
    queue: WorkQueue[str] = WorkQueue()
    for trigger in ("pods", "jobs", "configmaps", "event"):
        queue.add("a", trigger)
    queue.add("b")
    assert queue.get(timeout=0) == ("a", "pods")  # the first trigger is reported
    assert queue.get(timeout=0) == ("b", "event")
    assert queue.get(timeout=0) is None
    queue.add("c", "pods")
    queue.add("c", "resync")  # ... except the first pass after a start, which re-applies
    assert queue.get(timeout=0) == ("c", "resync")


def test_a_key_never_runs_on_two_workers_and_runs_again_when_dirtied():
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(timeout=0) == ("a", "event")
    queue.add("a", "jobs")  # arrives while a worker holds it
    assert queue.get(timeout=0) is None
    queue.done("a")
    assert queue.get(timeout=0) == ("a", "jobs")


def test_requeue_after_and_backoff_delays():
    queue: WorkQueue[str] = WorkQueue(base_delay=0.05, max_delay=0.2)
    queue.add_after("a", 0.1)
    assert queue.get(timeout=0.02) is None
    started = time.monotonic()
    assert queue.get(timeout=1) == ("a", "requeue")
    assert time.monotonic() - started >= 0.05
    queue.done("a")
    assert [queue.backoff("b") for _ in range(4)] == [0.05, 0.1, 0.2, 0.2]
    queue.forget("b")
    assert queue.backoff("b") == 0.05


def test_close_wakes_waiting_workers():
    queue: WorkQueue[str] = WorkQueue()
    results = []
    worker = threading.Thread(target=lambda: results.append(queue.get()))
    worker.start()
    queue.close()
    worker.join(timeout=2)
    assert results == [None]


# --- the child index ---------------------------------------------------------------------------

def test_children_are_keyed_by_the_owner_labels_and_slimmed():
    job = child("r-trainer-1", 5, "Job", spec={"template": {"big": 1}, "suspend": False},
                status={"active": 1})
    job["metadata"]["managedFields"] = [{"manager": "x"}]
    job["metadata"]["annotations"] = {"arclight.dev/attempt": "1", "other/x": "y"}
    assert owner_key(job) == OWNER
    budget_child = child("b-usage", 1)
    budget_child["metadata"]["labels"]["arclight.dev/owner-kind"] = "CreditBudget"
    assert owner_key(budget_child, cluster_scoped={"CreditBudget"}) == ("CreditBudget", None, "r")
    assert owner_key({"metadata": {"name": "x"}}) is None
    small = slim(job)
    assert small["spec"] == {"suspend": False} and small["status"] == {"active": 1}
    assert "managedFields" not in small["metadata"]
    assert small["metadata"]["annotations"] == {"arclight.dev/attempt": "1"}
    payload = child("r-config", 1, data={"config.json": "{...}"})
    assert "data" not in slim(payload)  # only the report channel's data is kept
    report = child("r-report", 1, data={"progress": "{}"})
    report["metadata"]["labels"]["app.kubernetes.io/component"] = "report"
    assert slim(report)["data"] == {"progress": "{}"}


def test_the_overlay_bridges_the_watch_lag_of_our_own_writes():
    watched: dict = {}
    index = ChildIndex()
    index.attach({"arclight_index_configmaps": watched, "unrelated": {}})
    index.wrote(OWNER, child("r-config", 10))
    assert index.children(OWNER)["ConfigMap"]["r-config"]["metadata"]["resourceVersion"] == "10"
    watched[OWNER] = [child("r-config", 9)]  # the watch still shows an older version
    assert index.children(OWNER)["ConfigMap"]["r-config"]["metadata"]["resourceVersion"] == "10"
    watched[OWNER] = [child("r-config", 11)]  # caught up: the index wins from now on
    assert index.children(OWNER)["ConfigMap"]["r-config"]["metadata"]["resourceVersion"] == "11"
    watched[OWNER] = [child("r-config", 11), child("r-old", 3)]
    index.deleted(OWNER, "ConfigMap", "r-old")
    assert set(index.children(OWNER)["ConfigMap"]) == {"r-config"}
    watched[OWNER] = [child("r-config", 11)]
    assert set(index.children(OWNER)["ConfigMap"]) == {"r-config"}


def test_the_echo_of_our_own_write_and_older_events_are_not_news():
    objects = LatestObjects()
    assert objects.get(OWNER) is None
    assert objects.observed(OWNER, child("r", 5))  # listed: news
    objects.wrote(OWNER, child("r", 7))  # our status patch answered with 7
    assert not objects.observed(OWNER, child("r", 6))  # in flight before our write
    assert not objects.observed(OWNER, child("r", 7))  # the watch echo of our write
    assert objects.get(OWNER)["metadata"]["resourceVersion"] == "7"
    assert objects.observed(OWNER, child("r", 8))  # someone else changed it
    assert not objects.observed(OWNER, child("r", 8))  # a relisting repeats what we know
    heavy = child("r", 9)
    heavy["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert objects.observed(OWNER, heavy)
    assert "managedFields" not in objects.get(OWNER)["metadata"]  # kept lean
    assert "managedFields" in heavy["metadata"]  # the event's own copy is left as it was
    objects.wrote(OWNER, child("r", 4))  # a late answer never replaces a newer object
    assert objects.get(OWNER)["metadata"]["resourceVersion"] == "9"
    objects.forget(OWNER)
    assert objects.get(OWNER) is None and len(objects) == 0


# --- apply's pure parts ------------------------------------------------------------------------

def test_merge_diff_sets_changes_and_clears_what_the_plan_left_out():
    old = {"phase": "Running", "diagnosis": {"reason": "OutOfMemory"},
           "progress": {"step": 1, "percent": 25}, "conditions": [{"type": "A"}]}
    new = {"phase": "Running", "progress": {"step": 2, "percent": 25},
           "conditions": [{"type": "A"}, {"type": "B"}]}
    assert merge_diff(old, new) == {"diagnosis": None, "progress": {"step": 2},
                                    "conditions": [{"type": "A"}, {"type": "B"}]}
    assert merge_diff(new, new) == {}


def test_the_desired_hash_changes_only_with_the_manifest():
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"k": "v"}}
    applied = with_hash(manifest)
    assert applied["metadata"]["annotations"][HASH_ANNOTATION] == manifest_hash(manifest)
    assert manifest_hash({**manifest, "data": {"k": "w"}}) != manifest_hash(manifest)
    assert "annotations" not in manifest["metadata"]  # the input is left as it was


def test_kopf_leftovers_are_removed_once():
    obj = {"metadata": {"resourceVersion": "7",
                        "finalizers": ["arclight.dev/finalizer", "other.io/keep"],
                        "annotations": {"arclight.dev/last-handled-configuration": "{}"}}}
    assert legacy_cleanup(obj) == {"metadata": {
        "finalizers": ["other.io/keep"], "resourceVersion": "7",
        "annotations": {"arclight.dev/last-handled-configuration": None}}}
    assert legacy_cleanup({"metadata": {"finalizers": ["other.io/keep"]}}) is None


def test_a_change_shown_only_by_the_answer_to_our_write_queues_another_pass():
    planned = child("r", 5)
    planned["metadata"]["generation"] = 1
    answer = {**planned, "metadata": {**planned["metadata"], "resourceVersion": "7"}}
    assert not changed_meanwhile(planned, answer)  # only our status moved on
    answer["metadata"]["generation"] = 2  # the user's spec edit landed before our write
    assert changed_meanwhile(planned, answer)
    relabelled = {**planned, "metadata": {**planned["metadata"], "labels": {"a": "b"}}}
    assert changed_meanwhile(planned, relabelled)
