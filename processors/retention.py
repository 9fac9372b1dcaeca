"""How long each kind of data is kept: the processors' own settings, under ``retention:`` in fnscope.yaml."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Retention(BaseModel):
    """Days each data kind is kept, counted from arrival (``ingested_at``), not from the event's own time."""

    logs: int = Field(30, description="function log lines, days")
    invocations: int = Field(90, description="invocation facts and the health aggregates, days")
    api: int = Field(90, description="API Gateway access logs, days")
    audit: int = Field(7 * 365, description="audit events and their seals, days")
    dead_letters: int = Field(30, description="dead-lettered records, days")
