"""``GET /metrics``: Prometheus text format, unauthenticated like ``/healthz``."""

from __future__ import annotations

from fastapi import FastAPI, Response

from parley.channels.services import Services
from parley.metrics import CONTENT_TYPE


def install(app: FastAPI, services: Services) -> None:
    metrics = services.metrics

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)
