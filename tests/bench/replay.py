"""The ceiling for the operator's throughput on this cluster: the same writes, from a plain
client.

The raw write rate (ConfigMaps) leaves out what a TrainingRun costs the cluster beyond the
operator's 8 writes: server-side apply is dearer than a create, and each run's Job makes the
job controller create a pod, the scheduler mark it, the token controller give the service
account a Secret, and Events follow. Here the runs are created first in a namespace no
operator watches; then 8 threads run, for each, the frame's own ``decide`` and ``apply_plan``
(the plan of a new run: 7 children, one status patch, 2 Events) with no watch, no queue and
no kopf. Runs per second of that is what any operator sending those writes could reach here.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import operator_load as load
from arclight.clients.kube import Kube
from arclight.framework import settings as arclight_settings
from arclight.framework.apply import apply_plan
from arclight.framework.context import OperatorContext
from arclight.framework.frame import decide
from arclight.framework.wiring import KINDS
from arclight.training.kind import TRAINING_RUN
from kubernetes import client


def replay_rate(kubeconfig: str, namespace: str, runs: int, threads: int = 8) -> float:
    """Runs per second of the operator's writes for ``runs`` new runs, sent directly."""
    api = load.api_client(kubeconfig)
    names = [f"replay-{i:04d}" for i in range(runs)]
    load.create_runs(api, namespace, names)
    objs = [client.CustomObjectsApi(api).get_namespaced_custom_object(
        load.GROUP, load.VERSION, namespace, load.PLURAL, name) for name in names]
    os.environ.setdefault("ARCLIGHT_TRAINER_IMAGE", "docker.io/arclight/trainer:bench")
    api.configuration.connection_pool_maxsize = threads + 4
    ctx = OperatorContext(settings=arclight_settings.from_env(), kube=Kube(api),
                          kinds={**KINDS, TRAINING_RUN.kind: TRAINING_RUN})

    def reconcile(obj: dict) -> None:
        key = (TRAINING_RUN.kind, namespace, obj["metadata"]["name"])
        observed, plan, _ = decide(TRAINING_RUN, ctx, key, obj)
        apply_plan(ctx.kube, ctx.children, TRAINING_RUN, key, observed, plan)

    ctx.facts()  # discovery once, outside the timing
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(reconcile, objs))
    return runs / (time.monotonic() - started)
