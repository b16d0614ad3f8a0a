"""Kopf startup: settings (read once), the typed context, the reconcile workers, kopf's own
settings, peering, /metrics and /readyz.

Liveness is kopf's own endpoint (``kopf run --liveness=http://0.0.0.0:8080/healthz``).
Two replicas coordinate through kopf peering (``--peering=arclight``): each takes a random
priority, and the lower one pauses while the higher one is alive, so only one acts.
"""
from __future__ import annotations

import logging
import secrets
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from arclight.clients.kube import Kube, load_config
from arclight.clients.ledger import Ledger
from arclight.core.costs import Metering
from arclight.framework import settings as arclight_settings
from arclight.framework.context import MEMO_KEY, OperatorContext
from arclight.framework.frame import start_workers
from arclight.framework.meter import Meter
from arclight.framework.wiring import KINDS

PREFIX = "arclight.dev"
log = logging.getLogger(__name__)


def configure_framework(settings: kopf.OperatorSettings) -> None:
    """Peering priority, watch timeouts, and which log records kopf posts as Events.

    The operator registers only event handlers and indexes, so kopf stores no progress or
    diff-base annotations and puts no finalizers on objects.
    """
    settings.posting.level = logging.WARNING
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # no line per watch event
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    if not settings.peering.standalone and settings.peering.priority == 0:
        settings.peering.priority = 1 + secrets.randbelow(2**31 - 2)


def ensure_peering(kube: Kube, name: str, namespaces: tuple[str, ...]) -> None:
    """Create the peering objects the replicas meet in (kopf does not create them): one
    ClusterKopfPeering for a cluster-wide install, a KopfPeering per watched namespace."""
    if not namespaces:
        kube.create({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                     "metadata": {"name": name}})
    for namespace in namespaces:
        kube.create({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                     "metadata": {"name": name, "namespace": namespace}})


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _ready(request: web.Request) -> web.Response:
    ready = MEMO_KEY in request.app["memo"]
    return web.Response(status=200 if ready else 503, text="ok" if ready else "starting")


async def serve_http(memo: Any, port: int) -> web.AppRunner:
    """Serve ``/metrics`` (Prometheus) and ``/readyz`` on ``port``."""
    app = web.Application()
    app["memo"] = memo
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/readyz", _ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Read the settings (a bad value stops the operator with one message naming it),
    configure kopf, connect, start the workers and /metrics."""
    try:
        config = arclight_settings.from_env()
    except arclight_settings.SettingsError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    configure_framework(settings)
    kube = Kube(load_config(pool_size=config.workers + 4))
    if not settings.peering.standalone:
        ensure_peering(kube, settings.peering.name, config.watch_namespaces)
    ctx = OperatorContext(settings=config, kube=kube, kinds=KINDS)
    start_workers(ctx, config.workers)
    if config.ledger_dsn is not None:
        ctx.metering = Metering(enabled=True)
        memo["meter"] = Meter(ctx, Ledger(config.ledger_dsn.get_secret_value()),
                              config.metering_interval)
        memo["meter"].start()
    memo["http"] = await serve_http(memo, config.metrics_port)
    memo[MEMO_KEY] = ctx
    log.info("arclight operator started: %d workers, kinds %s, trainer image %s, metrics on :%d,"
             " metering %s", config.workers, ", ".join(sorted(KINDS)), config.trainer_image,
             config.metrics_port, f"every {config.metering_interval:g}s" if config.ledger_dsn
             else "off (no ledger)")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the workers and the HTTP server."""
    ctx = memo.pop(MEMO_KEY, None)
    if isinstance(ctx, OperatorContext):
        ctx.queue.close()
    if memo.get("meter") is not None:
        memo["meter"].stop()
    if memo.get("http") is not None:
        await memo["http"].cleanup()
