"""Tenants, tokens, limits, injection and secrets, against a real `fnscope up` with tokens configured."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fnscope.collector.field_limits import MARKER
from tests.conftest import FNSCOPE, Process, all_stored, free_port, start_fnscope_up

TOKENS = {"tok-acme-5f1d0c": "acme", "tok-globex-9a7e22": "globex", "tok-limited-33b1": "limited"}
ACME, GLOBEX, LIMITED = (f"Bearer {t}" for t in TOKENS)
# Per hour, per token: the limiter's sliding-window counter weighs the previous window in, so a loop crossing a window
# edge may pass a few more than RATE; an hour's edge falls inside the few seconds of the loop far less often.
RATE = 200
MAX_RECORDS = 1000
MAX_FIELD = 2000
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Process]]:
    tmp = tmp_path_factory.mktemp("secure")
    env = {
        "FNSCOPE_TOKENS": ",".join(f"{t}:{tenant}" for t, tenant in TOKENS.items()),
        "FNSCOPE_LIMITS__RATE_LIMIT": f"{RATE}/hour",
        "FNSCOPE_LIMITS__MAX_RECORDS_PER_REQUEST": str(MAX_RECORDS),
        "FNSCOPE_LIMITS__MAX_FIELD_CHARS": str(MAX_FIELD),
    }
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log", env)
    yield url, proc
    proc.stop()


def _telemetry(function: str, word: str) -> bytes:
    t = NOW.isoformat().replace("+00:00", "Z")
    return json.dumps([{"time": t, "type": "function", "record": f"{word} processing order 1"}]).encode()


def _cloudwatch(function: str, word: str) -> bytes:
    return gzip.compress(
        json.dumps(
            {
                "messageType": "DATA_MESSAGE",
                "owner": "111122223333",
                "logGroup": f"/aws/lambda/{function}",
                "logStream": "2026/11/27/[$LATEST]abc",
                "subscriptionFilters": ["all"],
                "logEvents": [
                    {"id": f"{word}-cw-1", "timestamp": int(NOW.timestamp() * 1000), "message": f"{word} from cw\n"}
                ],
            }
        ).encode()
    )


def _firehose(function: str, word: str) -> bytes:
    data = base64.b64encode(_cloudwatch(function, f"{word}fh")).decode()
    return json.dumps(
        {"requestId": f"{word}-req", "timestamp": int(NOW.timestamp() * 1000), "records": [{"data": data}]}
    ).encode()


def _cloudtrail(word: str) -> bytes:
    record = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/{word}", "userName": word},
        "eventTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "lambda.amazonaws.com",
        "eventName": "UpdateFunctionCode20150331v2",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "test",
        "requestParameters": {"functionName": f"{word}fn"},
        "eventID": f"{word}-event-1",
        "eventType": "AwsApiCall",
    }
    return json.dumps({"Records": [record]}).encode()


def _apigateway(word: str) -> bytes:
    line = {
        "requestId": f"{word}-api-1",
        "ip": "203.0.113.9",
        "requestTime": NOW.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "httpMethod": "GET",
        "routeKey": f"GET /{word}",
        "status": "200",
        "protocol": "HTTP/1.1",
        "responseLength": "42",
    }
    return json.dumps(line).encode()


def _otlp_export(url: str, token: str, word: str) -> None:
    """Through the real OpenTelemetry SDK log exporter, with OTLP's Authorization header."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": f"{word}svc", "faas.name": f"{word}fn"}))
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs", headers={"Authorization": token})
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(f"otlp-{word}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=provider))
    logger.warning("%s via otlp", word)
    provider.shutdown()


def _ingest_all(url: str, auth: str, word: str) -> None:
    headers = {"Authorization": auth}
    fn = f"{word}fn"
    with httpx.Client(base_url=url, timeout=30) as c:
        responses = [
            c.post(f"/ingest/telemetry?function={fn}", content=_telemetry(fn, word), headers=headers),
            c.post(
                "/ingest/cloudwatch",
                content=_cloudwatch(fn, word),
                headers={"X-Fnscope-Token": auth.removeprefix("Bearer ")},
            ),
            c.post(
                "/ingest/firehose",
                content=_firehose(fn, word),
                headers={"X-Amz-Firehose-Access-Key": auth.removeprefix("Bearer ")},
            ),
            c.post("/ingest/cloudtrail", content=_cloudtrail(word), headers=headers),
            c.post(f"/ingest/apigateway?api={word}api", content=_apigateway(word), headers=headers),
        ]
    for r in responses:
        assert r.status_code == 200, (r.request.url, r.text)
    _otlp_export(url, auth, word)


def _api_get_routes(url: str) -> dict[str, dict[str, str]]:
    """Every GET route under /api (other areas add theirs), with a placeholder for each required parameter."""
    spec = httpx.get(f"{url}/openapi.json", headers={"Authorization": ACME}).json()
    routes = {}
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/") or "get" not in ops or "{" in path:
            continue
        required = [p["name"] for p in ops["get"].get("parameters", []) if p.get("required") and p["in"] == "query"]
        routes[path] = {"since": "1d", **dict.fromkeys(required, "acmeword-event-1")}
    return routes


def _get_text(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    """A GET's status and body; a live stream (`--follow`) is read for a few seconds."""
    chunks: list[str] = []
    deadline = time.monotonic() + 3
    try:
        with httpx.stream("GET", url, params=params, headers=headers, timeout=httpx.Timeout(30, read=3)) as r:
            for chunk in r.iter_text():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    break
    except httpx.ReadTimeout:
        pass
    return r.status_code, "".join(chunks)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_endpoint_takes_its_token_and_every_query_stays_in_its_tenant(server: tuple[str, Process]) -> None:
    url, _ = server
    _ingest_all(url, ACME, "acmeword")
    _ingest_all(url, GLOBEX, "globexword")
    all_stored(url, ACME)
    routes = _api_get_routes(url)
    assert {"/api/search", "/api/audit", "/api/stats", "/api/dead-letters"} <= set(routes)
    seen = {"acme": "", "globex": ""}
    for route, params in routes.items():
        for tenant, auth in (("acme", ACME), ("globex", GLOBEX)):
            status, text = _get_text(f"{url}{route}", params, {"Authorization": auth})
            # Routes with required parameters get a placeholder and may refuse it; none may fail or leak.
            assert status == 200 or (len(params) > 1 and 400 <= status < 500), (route, text)
            seen[tenant] += text
        assert httpx.get(f"{url}{route}", params=params, timeout=30).status_code == 401, route
    # Each tenant sees its own data from every ingest path, and nothing of the other's.
    for word in (
        "acmeword via otlp",
        "acmeword from cw",
        "acmewordfh from cw",
        "acmeword processing",
        "acmeword-event-1",
    ):
        assert word in seen["acme"], word
    assert "acmeword" not in seen["globex"].replace("acmeword-event-1", "")
    assert "globexword" in seen["globex"]
    assert "globexword" not in seen["acme"]


def test_bad_or_missing_token_is_401_on_every_ingest_path(server: tuple[str, Process]) -> None:
    url, _ = server
    for path in ("/ingest/telemetry", "/ingest/cloudwatch", "/ingest/apigateway", "/ingest/cloudtrail", "/v1/logs"):
        assert httpx.post(f"{url}{path}", content=b"[]").status_code == 401
        assert httpx.post(f"{url}{path}", content=b"[]", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = httpx.post(f"{url}/ingest/firehose", content=b"{}", headers={"X-Amz-Firehose-Access-Key": "nope"})
    assert r.status_code == 401 and "errorMessage" in r.json()


def test_sql_metacharacters_in_parameters_only_ever_filter(server: tuple[str, Process]) -> None:
    url, _ = server
    headers = {"Authorization": ACME}
    tricky = "O'Brien\\'; DROP TABLE function_logs; --"
    fn = "injfn"
    body = json.dumps(
        [{"time": NOW.isoformat().replace("+00:00", "Z"), "type": "function", "record": f"customer {tricky} paid"}]
    ).encode()
    assert httpx.post(f"{url}/ingest/telemetry?function={fn}", content=body, headers=headers).status_code == 200
    all_stored(url, ACME)

    def search(**params: str) -> list[dict]:
        """The rows a filter leaves; a value the API refuses outright (400) leaves none."""
        r = httpx.get(f"{url}/api/search", params={"since": "1d", "limit": "1000", **params}, headers=headers)
        assert r.status_code in (200, 400), r.text
        return r.json()["results"] if r.status_code == 200 else []

    everything = search()
    assert len(everything) > 1
    assert [row["message"] for row in search(q="O'Brien\\';")] == [f"customer {tricky} paid"]
    for value in ("x' OR '1'='1", "' OR 1=1 --", "injfn' OR function != '", "}{tenant:String}", "\\' OR 1 --"):
        assert search(function=value) == []
        assert search(level=value) == []
        assert search(request_id=value) == []
        # Free text may be a query language (OR, quotes...): whatever it matches is a subset of the stored rows.
        assert {r["event_id"] for r in search(q=value)} <= {r["event_id"] for r in everything}
        r = httpx.get(f"{url}/api/audit", params={"since": "1d", "principal": value}, headers=headers)
        assert r.status_code == 200 and r.json()["results"] == []
    assert len(search()) == len(everything), "nothing was dropped or changed"


def test_rate_limit_per_token_is_429_with_retry_after(server: tuple[str, Process]) -> None:
    url, _ = server
    to_the_hour = 3600 - time.time() % 3600
    if to_the_hour < 30:  # the loop would cross the window's edge, where the previous hour still counts
        time.sleep(to_the_hour + 1)
    codes = []
    with httpx.Client(timeout=10) as c:
        for _ in range(RATE + 5):
            r = c.get(f"{url}/api/stats", headers={"Authorization": LIMITED})
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                break
        assert codes[-1] == 429 and codes.count(200) <= RATE
        # Another token is not held back by this one.
        assert c.get(f"{url}/api/stats", headers={"Authorization": GLOBEX}).status_code == 200


def test_records_per_request_and_field_size_limits(server: tuple[str, Process]) -> None:
    url, _ = server
    headers = {"Authorization": ACME}
    t = NOW.isoformat().replace("+00:00", "Z")
    too_many = json.dumps([{"time": t, "type": "function", "record": f"line {i}"} for i in range(MAX_RECORDS + 1)])
    r = httpx.post(f"{url}/ingest/telemetry?function=many", content=too_many.encode(), headers=headers)
    assert r.status_code == 413 and str(MAX_RECORDS) in r.json()["detail"]

    long_line = "hugeline " + "x" * (MAX_FIELD * 3)
    body = json.dumps([{"time": t, "type": "function", "record": long_line}]).encode()
    r = httpx.post(f"{url}/ingest/telemetry?function=bigfn", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    all_stored(url, ACME)
    rows = httpx.get(
        f"{url}/api/search", params={"q": "hugeline", "function": "bigfn", "since": "1d"}, headers=headers
    ).json()["results"]
    assert len(rows) == 1
    message = rows[0]["message"]
    assert message.startswith(long_line[:MAX_FIELD]) and len(message) < len(long_line)
    assert message.endswith(MARKER.format(len(long_line) - MAX_FIELD))


def test_secrets_never_reach_the_logs(server: tuple[str, Process]) -> None:
    url, proc = server
    # Failures are where secrets leak: bad bodies, bad tokens, a token in a query string.
    for token in TOKENS:
        httpx.post(f"{url}/ingest/cloudtrail", content=b"{not json", headers={"Authorization": f"Bearer {token}"})
        httpx.post(f"{url}/ingest/firehose", content=b"[", headers={"X-Amz-Firehose-Access-Key": token})
        httpx.get(f"{url}/api/search", params={"q": token}, headers={"Authorization": f"Bearer {token}x"})
    log = proc.output()
    assert "fnscope up" in log, "the log is the process's real output"
    for token in TOKENS:
        assert token not in log


def test_non_loopback_bind_without_tokens_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [*FNSCOPE, "up", "--data-dir", str(tmp_path), "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "FNSCOPE_TOKENS"},
    )
    assert result.returncode != 0
    assert "FNSCOPE_TOKENS" in result.stderr + result.stdout
