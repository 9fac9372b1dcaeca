"""API Gateway access logs: the deployment a request ran on and whether the stage's canary release took it, so a
canary stage's figures show beside its base release's."""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "api_access: deployment id and canary flag"


def statements(r: Retention) -> list[str]:
    return [
        "ALTER TABLE api_access ADD COLUMN IF NOT EXISTS deployment_id LowCardinality(String) AFTER stage",
        "ALTER TABLE api_access ADD COLUMN IF NOT EXISTS canary Nullable(Bool) AFTER deployment_id",
    ]
