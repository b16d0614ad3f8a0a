"""The reconcile frame every kind runs in, once.

A worker takes a key from the queue (so one pass per object at a time), takes the newest
known version of the object (watch or own write; a GET only for a key the watch has not
delivered; nothing to do once it is gone or being deleted), observes its children (from the
index) and the objects it references, asks the kind for a pure plan, applies it, and maps
errors: ``InvalidSpec`` and ``DependencyNotReady`` become the kind's error plan (a
condition; a Warning only for the former; a requeue for the latter); API errors and bugs are
retried with backoff and counted by reason (``http_<status>`` or the exception's class).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from arclight.clients.kube import ApiError
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.plan import Kind, Observed, Plan
from arclight.framework import metrics
from arclight.framework.apply import apply_plan
from arclight.framework.context import OperatorContext
from arclight.framework.index import OwnerKey

log = logging.getLogger(__name__)
#: What kopf wrote on objects before this frame (kopf's handlers and timers); removed.
LEGACY_FINALIZER = "arclight.dev/finalizer"
LEGACY_ANNOTATIONS = ("arclight.dev/last-handled-configuration",)


def observe(ctx: OperatorContext, kind: Kind[Any], key: OwnerKey, obj: dict[str, Any],
            spec: Any) -> Observed:
    """The object, its children (index) and the objects its spec references (read now)."""
    refs = {ref: ctx.kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            for ref in kind.references(obj, spec)}
    ctx.references.record(key, {(ref.kind, ref.namespace, ref.name) for ref in refs})
    return Observed(obj, ctx.children.children(key), refs)


def legacy_cleanup(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A patch removing kopf's finalizer and annotations from an object (or None)."""
    meta = obj["metadata"]
    patch: dict[str, Any] = {}
    finalizers = list(meta.get("finalizers") or [])
    if LEGACY_FINALIZER in finalizers:
        patch["finalizers"] = [f for f in finalizers if f != LEGACY_FINALIZER]
        patch["resourceVersion"] = meta["resourceVersion"]
    stale = [a for a in (meta.get("annotations") or {}) if a in LEGACY_ANNOTATIONS]
    if stale:
        patch["annotations"] = dict.fromkeys(stale)
    return {"metadata": patch} if patch else None


def decide(kind: Kind[Any], ctx: OperatorContext, key: OwnerKey, obj: dict[str, Any]
           ) -> tuple[Observed, Plan, str]:
    """Observe and plan one pass; the plan for an invalid or blocked object comes from the
    kind's ``on_error``. Returns the observation, the plan and the outcome label."""
    facts = ctx.facts()
    observed = Observed(obj, ctx.children.children(key))
    try:
        spec = kind.parse(obj)
        observed = observe(ctx, kind, key, obj, spec)
        return observed, kind.plan(spec, observed, facts), "ok"
    except (InvalidSpec, DependencyNotReady) as exc:
        plan = kind.on_error(observed, exc, facts)
        if isinstance(exc, DependencyNotReady) and plan.requeue_after is None:
            plan.requeue_after = exc.retry_after
        return observed, plan, type(exc).__name__


def run_pass(ctx: OperatorContext, kind: Kind[Any], key: OwnerKey, trigger: str = "event"
             ) -> float | None:
    """One pass over ``key``; returns the requeue delay the plan asked for. The first pass
    after a start (trigger ``resync``) re-applies every child, repairing drift."""
    obj = ctx.objects.get(key) or _read(ctx, kind, key)
    if obj is None:
        return None
    cleanup = legacy_cleanup(obj)
    if cleanup:
        obj = ctx.kube.merge_patch(obj, cleanup)
        ctx.objects.wrote(key, obj)
    if obj["metadata"].get("deletionTimestamp"):
        return None
    observed, plan, outcome = decide(kind, ctx, key, obj)
    if outcome != "ok":
        metrics.RECONCILE_ERRORS.labels(kind.kind, outcome).inc()
    written = apply_plan(ctx.kube, ctx.children, kind, key, observed, plan,
                         force=trigger == "resync")
    if written is not None:
        ctx.objects.wrote(key, written)
        if changed_meanwhile(obj, written):
            ctx.queue.add(key, "event")
    return plan.requeue_after


def changed_meanwhile(planned: dict[str, Any], written: dict[str, Any]) -> bool:
    """Whether the answer to the pass's own write shows a change the pass did not plan with
    (a new generation, labels or annotations). The watch event of that change is then older
    than what is known and queues nothing, so the frame queues the next pass itself."""
    old, new = planned["metadata"], written["metadata"]
    return any(old.get(field) != new.get(field)
               for field in ("generation", "labels", "annotations"))


def _read(ctx: OperatorContext, kind: Kind[Any], key: OwnerKey) -> dict[str, Any] | None:
    """The object from the API server (a key the watch has not delivered, or no longer has:
    a requeue after its deletion)."""
    _, namespace, name = key
    obj = ctx.kube.get(kind.api_version, kind.kind, name, namespace)
    if obj is None:
        ctx.children.forget(key)
    else:
        ctx.objects.wrote(key, obj)
    return obj


def work(ctx: OperatorContext) -> None:
    """A worker: take keys until the queue closes; never lets an error escape."""
    while (item := ctx.queue.get()) is not None:
        key, trigger = item
        kind = ctx.kinds[key[0]]
        metrics.RECONCILES.labels(kind.kind, trigger).inc()
        started = time.monotonic()
        try:
            requeue = run_pass(ctx, kind, key, trigger)
            ctx.queue.forget(key)
            if requeue is not None:
                ctx.queue.add_after(key, requeue)
        except ApiError as exc:
            metrics.RECONCILE_ERRORS.labels(kind.kind, f"http_{exc.status}").inc()
            if exc.status == 403 and "being terminated" in str(exc.body or ""):
                ctx.queue.forget(key)  # its namespace is going away, and the object with it
                continue
            if exc.status == 409:
                ctx.objects.forget(key)  # the retry reads the object afresh
            delay = ctx.queue.backoff(key)
            log.warning("%s %s/%s: API error %s %s (%s); retrying in %.1fs", kind.kind, key[1],
                        key[2], exc.status, exc.reason, str(exc.body or "")[:300], delay)
        except Exception as exc:  # a bug must not stop the worker or crash-loop the operator
            metrics.RECONCILE_ERRORS.labels(kind.kind, type(exc).__name__).inc()
            delay = ctx.queue.backoff(key)
            log.exception("%s %s/%s: pass failed; retrying in %.1fs", kind.kind, key[1],
                          key[2], delay)
        finally:
            metrics.RECONCILE_SECONDS.labels(kind.kind).observe(time.monotonic() - started)
            metrics.QUEUE_DEPTH.set(len(ctx.queue))
            ctx.queue.done(key)


def start_workers(ctx: OperatorContext, count: int) -> list[threading.Thread]:
    """Start ``count`` worker threads (daemons: they end with the process)."""
    threads = [threading.Thread(target=work, args=(ctx,), name=f"arclight-worker-{i}",
                                daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads
