"""The normalized event model: what every receiver produces and every store consumes.

Four signals plus the dead-letter record. Each event carries a deterministic ``event_id`` derived from the
source's own identity (CloudTrail ``eventID``, telemetry request id + type, CloudWatch log event id, ...), so a
replay or a re-delivery lands on the same id and the store's de-duplication hides it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def stable_id(*parts: object) -> str:
    """A short deterministic id from the parts that identify an event at its source."""
    # each part followed by a unit separator, hashed in one call
    text = "\x1f".join(map(str, parts)) + "\x1f" if parts else ""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What a stored value may be; anything else is refused with its record (a dead letter saying which field and why),
# never stored wrong. Times: from 2000 (older is no serverless fact) to a day ahead of this clock (skew, zones).
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
MAX_DURATION_MS = 86_400_000.0  # a day; Lambda stops an invocation at 15 minutes, an init at 10 seconds
MAX_MEMORY_MB = 1_048_576  # 1 TiB; Lambda offers up to 10,240 MB
MAX_HTTP_STATUS = 999
MAX_RESPONSE_BYTES = 2**53  # exact in a float, as JSON readers hold numbers
MAX_STRING_CHARS = 64 * 1024 * 1024  # the most a request may decompress to


def log_line_id(function: str, time: datetime, line: str) -> str:
    """The id of one function log line, computed alike by every path that can deliver it.

    A line reaches us by the Telemetry API extension and by the CloudWatch Logs subscription (direct or through
    Firehose), which share no line id. What both do carry is the function, the time the platform took the line
    (to the millisecond: Telemetry's ``time``, CloudWatch's ``timestamp``) and the line itself; ``line`` is its
    canonical text (``lambda_text.line_identity``), which includes the request id wherever the runtime wrote
    one. So the two copies get one id and the store's de-duplication shows the line once, as it does for
    invocation facts (function + request id + kind).
    """
    millis = (_utc(time) - _EPOCH) // timedelta(milliseconds=1)
    return stable_id("line", function, millis, line)


class Signal(StrEnum):
    INVOCATION = "invocation"
    LOG = "log"
    API = "api"
    AUDIT = "audit"
    DEAD_LETTER = "dead_letter"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _plausible(value: datetime) -> datetime:
    if value < EARLIEST_TIME or value > datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST_TIME.year} to a day from now")
    return value


_DURATION = Field(None, ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)
_MEMORY = Field(None, ge=0, le=MAX_MEMORY_MB)


class Event(BaseModel):
    """Fields every signal shares: who owns it and where in AWS it comes from."""

    # A long string is cut to the field limit before it is stored (collector/field_limits.py); this bound is only
    # what one request can hold at all. With it, pydantic also refuses text that is not valid Unicode (a lone
    # surrogate, which JSON can spell as \ud800): the store could not hold it, so it costs its record.
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_STRING_CHARS)
    signal: ClassVar[Signal]

    event_id: str
    time: datetime
    tenant: str = "default"
    account: str = ""
    region: str = ""
    source: str = Field(description="the wire format it arrived in, e.g. telemetry, cloudwatch, firehose")

    @field_validator("time")
    @classmethod
    def _time_is_utc(cls, value: datetime) -> datetime:
        return _plausible(_utc(value))

    def partition_key(self) -> str:
        """Kafka key: keeps one function's (or principal's) events in order in one partition."""
        return f"{self.tenant}/{getattr(self, 'function', '') or self.account}"


InvocationKind = Literal[
    "report", "start", "runtime_done", "init_report", "init_start", "restore_report", "timeout", "oom", "fault"
]


# Facts that happen at most once per invocation: identified by function + request id + kind, whichever path
# (Telemetry API extension, CloudWatch subscription, Firehose) delivered them, so two paths store one fact.
PER_REQUEST_KINDS = frozenset({"report", "start", "runtime_done", "timeout", "oom", "fault"})


class Invocation(Event):
    """A platform fact about one invocation: its REPORT, start, end status, a timeout or out-of-memory exit."""

    signal: ClassVar[Signal] = Signal.INVOCATION
    function: str
    version: str = ""
    request_id: str = ""
    kind: InvocationKind = "report"
    status: str = ""  # success | error | failure | timeout | oom | ""
    error_type: str = ""
    start_time: datetime | None = None
    duration_ms: float | None = _DURATION
    billed_duration_ms: float | None = _DURATION
    memory_size_mb: int | None = _MEMORY
    max_memory_used_mb: int | None = _MEMORY
    init_duration_ms: float | None = _DURATION
    restore_duration_ms: float | None = _DURATION
    cold_start: bool = False
    trace_id: str = ""

    @field_validator("start_time")
    @classmethod
    def _start_is_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _plausible(_utc(value))

    @model_validator(mode="after")
    def _id_from_request(self) -> Invocation:
        if self.request_id and self.kind in PER_REQUEST_KINDS:
            self.event_id = stable_id(self.function, self.request_id, self.kind)
        return self


class FunctionLog(Event):
    """One log line of a function (or its extensions and the platform's text lines).

    A line of a known function has a content-derived id (``log_line_id``), so the same line delivered by the
    Telemetry API and by a CloudWatch subscription is stored once.
    """

    signal: ClassVar[Signal] = Signal.LOG
    function: str = ""
    version: str = ""
    request_id: str = ""
    level: str = ""
    message: str
    log_type: str = "function"  # function | extension | platform
    log_group: str = ""
    log_stream: str = ""
    trace_id: str = ""
    fields: dict[str, str] = Field(default_factory=dict, description="flattened structured-log fields")


class ApiAccess(Event):
    """One API Gateway access-log record."""

    signal: ClassVar[Signal] = Signal.API
    api_id: str = ""
    stage: str = ""
    deployment_id: str = ""
    canary: bool | None = Field(None, description="sent to the stage's canary release; None: the line doesn't say")
    request_id: str = ""
    function: str = ""
    method: str = ""
    path: str = ""
    route: str = ""
    protocol: str = ""
    status: int = Field(0, ge=0, le=MAX_HTTP_STATUS)
    integration_status: int = Field(0, ge=0, le=MAX_HTTP_STATUS)
    latency_ms: float | None = _DURATION
    integration_latency_ms: float | None = _DURATION
    response_length: int | None = Field(None, ge=0, le=MAX_RESPONSE_BYTES)
    source_ip: str = ""
    user_agent: str = ""
    error_message: str = ""
    throttled: bool = False
    raw: str = ""

    def partition_key(self) -> str:
        return f"{self.tenant}/{self.api_id}"


class AuditEvent(Event):
    """One CloudTrail record, with the columns audits filter on and the whole record kept."""

    signal: ClassVar[Signal] = Signal.AUDIT
    service: str = ""
    action: str = ""
    principal_type: str = ""
    principal_arn: str = ""
    principal_name: str = ""
    principal_account: str = ""
    session_issuer: str = ""
    access_key: str = ""
    mfa: bool | None = None
    source_ip: str = ""
    user_agent: str = ""
    error_code: str = ""
    error_message: str = ""
    read_only: bool | None = None
    event_type: str = ""
    event_category: str = ""
    event_version: str = ""
    function: str = ""
    resources: list[str] = Field(default_factory=list)
    raw: str

    def partition_key(self) -> str:
        return f"{self.tenant}/{self.account}"


class DeadLetter(Event):
    """Input that could not be used, kept with its raw bytes and the reason."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")
    signal: ClassVar[Signal] = Signal.DEAD_LETTER
    reason: str
    raw: bytes = b""


SIGNAL_MODELS: dict[Signal, type[Event]] = {
    model.signal: model for model in (Invocation, FunctionLog, ApiAccess, AuditEvent, DeadLetter)
}


def dead_letter(source: str, reason: str, raw: bytes | str, tenant: str = "default", **ids: Any) -> DeadLetter:
    """A dead-letter record whose id is stable for the same raw bytes, so a retried request is stored once."""
    raw_bytes = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return DeadLetter(
        event_id=stable_id(source, reason, hashlib.blake2b(raw_bytes, digest_size=16).hexdigest()),
        time=datetime.now(UTC),
        tenant=tenant,
        source=source,
        reason=reason,
        raw=raw_bytes,
        **ids,
    )
