"""CloudTrail records in, AuditEvents out.

Accepts a CloudTrail log file (``{"Records": [...]}``), a bare JSON array of records, a single record, an
EventBridge "AWS API Call via CloudTrail" envelope, NDJSON or concatenated JSON documents. Digest files are
recognised and skipped. Records that cannot be mapped become dead letters; the rest of the body is kept.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson

from fnscope.collector.formats.base import Parsed, error_reason
from fnscope.decoding.arn import function_name
from fnscope.decoding.budget import take_records
from fnscope.decoding.compression import inflate_body
from fnscope.decoding.errors import UnusableBody
from fnscope.decoding.jsontext import Undecodable, compact_json, iter_documents_lenient, load_body
from fnscope.events import AuditEvent, stable_id
from fnscope.sink import IngestContext
from fnscope.timeparse import parse_iso_utc

SOURCE = "cloudtrail"

_DIGEST_KEYS = frozenset(
    {
        "digestStartTime",
        "digestEndTime",
        "digestS3Bucket",
        "digestS3Object",
        "digestPublicKeyFingerprint",
        "digestSignatureAlgorithm",
        "logFiles",
        "previousDigestSignature",
        "previousDigestS3Bucket",
        "previousDigestHashValue",
    }
)
_LAMBDA_SOURCE = "lambda.amazonaws.com"
# What every CloudTrail record carries, as strings: how a record is told apart from a log line that is JSON.
RECORD_KEYS = ("eventVersion", "eventID", "eventSource", "eventName", "eventTime")
_MAX_REASONS = 5


class RecordError(ValueError):
    """A record that cannot be mapped; the message is the dead-letter reason."""


# --- small coercions ------------------------------------------------------------------------------------------


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return compact_json(value)


def _bool(value: Any) -> bool | None:
    """CloudTrail spells booleans as JSON booleans, "true"/"false" and "Yes"/"YES"/"No"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
    return None


def parse_time(value: Any) -> datetime:
    """An ISO-8601 eventTime (``2014-03-25T20:17:37Z``) as an aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"eventTime is not a timestamp: {value!r}")
    try:
        return parse_iso_utc(value)
    except ValueError as exc:
        raise RecordError(f"unreadable eventTime {value!r}") from exc


# --- the record mapping ---------------------------------------------------------------------------------------


def is_digest(obj: Any) -> bool:
    """A CloudTrail digest file (integrity-validation metadata beside the log files), not an event."""
    if not isinstance(obj, dict) or "eventTime" in obj or "Records" in obj:
        return False
    return len(_DIGEST_KEYS.intersection(obj)) >= 2


def record_in_text(text: str) -> dict[str, Any] | None:
    """The CloudTrail record a log line holds whole (a trail delivering to CloudWatch Logs writes one record per
    log event), or None when the line is anything else."""
    if not text.startswith("{") or '"eventVersion"' not in text:  # most lines: no decoding at all
        return None
    try:
        rec = load_body(text.encode("utf-8", "surrogatepass"), "")
    except (UnusableBody, RecursionError):
        return None
    if not isinstance(rec, dict) or not all(isinstance(rec.get(key), str) and rec[key] for key in RECORD_KEYS):
        return None
    return rec


def _event_id(rec: dict[str, Any]) -> str:
    event_id = rec.get("eventID")
    # All-zero ids are placeholders (IAM Identity Center fixtures, redacted samples): not an identity.
    if isinstance(event_id, str) and event_id.strip("0-"):
        return event_id
    return stable_id(SOURCE, compact_json(rec, sort_keys=True))


def _principal_name(identity: dict[str, Any], issuer: dict[str, Any]) -> str:
    for candidate in (identity.get("userName"), issuer.get("userName")):
        if isinstance(candidate, str) and candidate:
            return candidate
    arn = identity.get("arn")
    if isinstance(arn, str) and arn:
        return re.split(r"[/:]", arn)[-1]
    return _str(identity.get("invokedBy"))


def _mfa(rec: dict[str, Any], identity: dict[str, Any]) -> bool | None:
    attributes = _obj(_obj(identity.get("sessionContext")).get("attributes"))
    mfa = _bool(attributes.get("mfaAuthenticated"))
    if mfa is None:
        mfa = _bool(_obj(rec.get("additionalEventData")).get("MFAUsed"))
    return mfa


def _resource_arns(rec: dict[str, Any]) -> list[str]:
    resources = rec.get("resources")
    if not isinstance(resources, list):
        return []
    arns = []
    for item in resources:
        item = _obj(item)
        arn = item.get("ARN") or item.get("arn") or item.get("ARNPrefix") or item.get("arnPrefix")
        if isinstance(arn, str) and arn:
            arns.append(arn)
    return arns


def _lambda_function(rec: dict[str, Any]) -> tuple[str, str]:
    """(function name, the most specific reference seen: a full ARN if there is one)."""
    request = _obj(rec.get("requestParameters"))
    response = _obj(rec.get("responseElements"))
    relative = _obj(_obj(request.get("fullyQualifiedArn")).get("relativeId"))
    candidates = [
        request.get("functionName"),
        response.get("functionArn"),
        response.get("functionName"),
        relative.get("functionName"),
        *(arn for arn in _resource_arns(rec) if ":function:" in arn),
    ]
    refs = [c for c in candidates if isinstance(c, str) and function_name(c)]
    if not refs:
        return "", ""
    name = function_name(refs[0])
    arn = next((r for r in refs if r.startswith("arn:") and function_name(r) == name), refs[0])
    return name, arn


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def record_to_event(rec: dict[str, Any], ctx: IngestContext, source: str = SOURCE) -> AuditEvent:
    """Map one CloudTrail record; raises ``RecordError`` (a ValueError) with the reason when it cannot."""
    if not isinstance(rec, dict):
        raise RecordError(f"not a CloudTrail record: a JSON {type(rec).__name__}")
    if "eventTime" not in rec:
        raise RecordError("not a CloudTrail record: no eventTime")
    identity = _obj(rec.get("userIdentity"))
    issuer = _obj(_obj(identity.get("sessionContext")).get("sessionIssuer"))
    function, function_ref = ("", "")
    if rec.get("eventSource") == _LAMBDA_SOURCE:
        function, function_ref = _lambda_function(rec)
    return AuditEvent(
        event_id=_event_id(rec),
        time=parse_time(rec.get("eventTime")),
        tenant=ctx.tenant,
        account=_str(rec.get("recipientAccountId")) or _str(identity.get("accountId")) or ctx.param("account"),
        region=_str(rec.get("awsRegion")) or ctx.param("region"),
        source=source,
        service=_str(rec.get("eventSource")),
        action=_str(rec.get("eventName")),
        principal_type=_str(identity.get("type")),
        principal_arn=_str(identity.get("arn")),
        principal_name=_principal_name(identity, issuer),
        principal_account=_str(identity.get("accountId")),
        session_issuer=_str(issuer.get("arn")),
        access_key=_str(identity.get("accessKeyId")),
        mfa=_mfa(rec, identity),
        source_ip=_str(rec.get("sourceIPAddress")),
        user_agent=_str(rec.get("userAgent")),
        error_code=_str(rec.get("errorCode")),
        error_message=_str(rec.get("errorMessage")),
        read_only=_bool(rec.get("readOnly")),
        event_type=_str(rec.get("eventType")),
        event_category=_str(rec.get("eventCategory")),
        event_version=_str(rec.get("eventVersion")),
        function=function,
        resources=_dedupe([*_resource_arns(rec), function_ref]),
        raw=compact_json(rec),
    )


# --- the body -------------------------------------------------------------------------------------------------


def _unwrap(obj: dict[str, Any]) -> dict[str, Any]:
    """The CloudTrail record inside an EventBridge "AWS API Call via CloudTrail" envelope."""
    detail = obj.get("detail")
    if "eventTime" not in obj and "detail-type" in obj and isinstance(detail, dict) and "eventName" in detail:
        return detail
    return obj


def _recover_raw_text(text: str) -> Any:
    """A record kept as text (doc examples whose JSON was damaged): its leading JSON value, if there is one."""
    try:
        return json.JSONDecoder(strict=False).raw_decode(text.strip())[0]
    except RecursionError as exc:
        raise RecordError("record text is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise RecordError(f"record text is truncated or not JSON: {exc.msg} at line {exc.lineno}") from exc


class _Collector:
    def __init__(self, ctx: IngestContext, source: str) -> None:
        self.ctx = ctx
        self.source = source
        self.parsed = Parsed(meta={"digest": False})
        self.reasons: list[str] = []

    def reject(self, reason: str, raw: bytes | str) -> None:
        self.parsed.reject(self.ctx, self.source, reason, raw)
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)

    def document(self, doc: Any, top: bool = True) -> None:
        """A top-level document, or (``top`` False) a log file found inside a top-level array."""
        if isinstance(doc, Undecodable):
            records, rest = _records_before_a_cut(doc)
            if records:
                self.document({"Records": records}, top)
            self.reject(rest.error, rest.text)
        elif isinstance(doc, list) and top:
            take_records(len(doc))
            for item in doc:
                self.item(item)
        elif isinstance(doc, dict) and "Records" in doc:
            records = doc["Records"]
            if not isinstance(records, list):
                self.reject(f"Records is a JSON {type(records).__name__}, not a list", compact_json(doc))
                return
            take_records(len(records))
            for item in records:
                self.item(item, nested=not top)
        else:
            self.item(doc, nested=not top)

    def item(self, item: Any, nested: bool = False) -> None:
        if is_digest(item):
            self.parsed.meta["digest"] = True
            return
        if isinstance(item, dict) and "Records" in item and not nested:  # log files inside an array
            self.document(item, top=False)
            return
        raw_text: str | None = None
        try:
            if isinstance(item, dict) and "raw_text" in item and "eventTime" not in item:
                raw_text = _str(item["raw_text"])
                item = _recover_raw_text(raw_text)
            if isinstance(item, dict):
                item = _unwrap(item)
            self.parsed.events.append(record_to_event(item, self.ctx, self.source))
        except (ValueError, RecursionError) as exc:  # RecordError, pydantic's ValidationError, absurd nesting
            self.reject(error_reason(exc), raw_text if raw_text is not None else compact_json(item))


_FILE_OPENING = re.compile(r'\s*\{\s*"Records"\s*:\s*\[\s*')
_BETWEEN_RECORDS = re.compile(r"\s*,\s*")


def _records_before_a_cut(broken: Undecodable) -> tuple[list[Any], Undecodable]:
    """A log file cut short (a partial download, a disk that filled) keeps the records before the cut: each is
    found from the file's opening and read as a whole body would be (orjson: no NaN, no raw control characters),
    and what follows the last whole one stays undecodable."""
    opening = _FILE_OPENING.match(broken.text)
    if opening is None:
        return [], broken
    finder = json.JSONDecoder(strict=False)
    records: list[Any] = []
    pos = opening.end()
    while True:
        try:
            _, end = finder.raw_decode(broken.text, pos)
            records.append(orjson.loads(broken.text[pos:end]))
        except (ValueError, RecursionError):  # JSONDecodeError and orjson's are ValueErrors; so is a 5000-digit int
            break
        between = _BETWEEN_RECORDS.match(broken.text, end)
        if between is None:
            pos = end
            break
        pos = between.end()
    if not records:
        return [], broken
    return records, Undecodable(broken.text[pos:], f"{broken.error}; the {len(records)} whole records before it kept")


def parse(body: bytes, ctx: IngestContext, source: str = SOURCE) -> Parsed:
    """Parse a CloudTrail body; raises ``UnusableBody`` when nothing in it is a usable record or a digest."""
    body = inflate_body(body)
    if not body.strip():
        raise UnusableBody('empty body: expected a CloudTrail log file ({"Records": [...]}) or JSON records')
    collector = _read(body, ctx, source)
    parsed = collector.parsed
    if parsed.dead and not parsed.events and not parsed.meta["digest"]:
        raise UnusableBody(
            f"no usable CloudTrail record ({len(parsed.dead)} rejected): " + "; ".join(dict.fromkeys(collector.reasons))
        )
    return parsed


def parse_rest(body: bytes, ctx: IngestContext) -> Parsed:
    """The records the embedded store handed back after storing the rest of their body itself
    (processors/cloudtrail_bulk.py): a record that cannot be used is a dead letter, never the whole body's 400."""
    return _read(body, ctx, SOURCE).parsed


def _read(body: bytes, ctx: IngestContext, source: str) -> _Collector:
    collector = _Collector(ctx, source)
    for doc in iter_documents_lenient(body):
        collector.document(doc)
    return collector
