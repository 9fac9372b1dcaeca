"""The query API: JSON over HTTP under /api, parameters mirroring the CLI flags, scoped to the caller's tenant.

Each query module contributes its own routes; add a module's ``routes`` here to publish it.
"""

from __future__ import annotations

from fastapi import APIRouter

from fnscope.query import (
    alerts,
    api_stages,
    appsync,
    audit,
    audit_export,
    audit_report,
    audit_saved,
    dead_letters,
    deployments,
    lambda_changes,
    panels,
    search,
    search_correlate,
    search_facets,
    search_tail,
    stats,
)
from fnscope.query.context import QueryContext

ROUTES = [
    search.routes,
    search_facets.facet_routes,
    search_tail.tail_routes,
    search_correlate.context_routes,
    audit.routes,
    audit_export.routes,
    audit_saved.routes,
    audit_report.routes,
    lambda_changes.routes,
    stats.routes,
    deployments.routes,
    api_stages.routes,
    appsync.routes,
    dead_letters.routes,
    alerts.routes,
    panels.routes,
]


def query_router(ctx: QueryContext) -> APIRouter:
    router = APIRouter(prefix="/api")
    for routes in ROUTES:
        router.include_router(routes(ctx))
    return router
