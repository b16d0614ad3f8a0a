"""Kopf startup: framework settings, validated operator settings, peering, /metrics, /readyz.

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

from arclight.framework import settings as arclight_settings
from arclight.clients.kube import Kube, load_config

PREFIX = "arclight.dev"
log = logging.getLogger(__name__)


def configure_framework(settings: kopf.OperatorSettings) -> None:
    """Annotation prefix, finalizer name, peering priority, and watch timeouts."""
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    if not settings.peering.standalone and settings.peering.priority == 0:
        settings.peering.priority = 1 + secrets.randbelow(2**31 - 2)


def ensure_peering(kube: Kube, name: str) -> None:
    """Create the ClusterKopfPeering object the replicas meet in (kopf does not create it)."""
    kube.apply({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                "metadata": {"name": name}}, create_only=True)


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _ready(request: web.Request) -> web.Response:
    ready = request.app["memo"].get("ready", False)
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
    """Validate settings (fail fast), configure kopf, connect, and start /metrics."""
    try:
        config = arclight_settings.get()
    except arclight_settings.SettingsError as exc:
        raise kopf.PermanentError(str(exc)) from None  # kopf stops the operator
    configure_framework(settings)
    memo["settings"] = config
    memo["kube"] = Kube(load_config())
    if not settings.peering.standalone:
        ensure_peering(memo["kube"], settings.peering.name)
    memo["http"] = await serve_http(memo, config.metrics_port)
    memo["ready"] = True
    log.info("arclight operator started: trainer image %s, metrics on :%d",
             config.trainer_image, config.metrics_port)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the HTTP server."""
    memo["ready"] = False
    if memo.get("http") is not None:
        await memo["http"].cleanup()
