"""Token scopes on every route of a real `fnscope up`: the telemetry token every function's environment holds can
only send telemetry, an audit token only CloudTrail, a read token only query, an admin token only administer; an
unknown token is a 401, a token outside its scopes a 403. The routes come from the app's own OpenAPI document, so a
route added later is checked too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from fnscope.auth import parse_grant
from tests.conftest import Process, start_fnscope_up
from tests.fixtures import cloudtrail_set, wire

TOKENS = {
    "tok-telemetry": "acme:telemetry",
    "tok-audit": "acme:audit",
    "tok-read": "acme:read",
    "tok-admin": "acme:admin",
    "tok-reader-admin": "acme:read+admin",
    "tok-everything": "acme",  # the older form: every scope, with a warning
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Process]]:
    tmp = tmp_path_factory.mktemp("scopes")
    env = {"FNSCOPE_TOKENS": ",".join(f"{token}:{grant}" for token, grant in TOKENS.items())}
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log", env)
    yield url, proc
    proc.stop()


def scope_of(method: str, path: str) -> str:
    """The scope each route needs, by what it does."""
    if path == "/ingest/cloudtrail":
        return "audit"
    if path.startswith(("/ingest/", "/v1/")):
        return "telemetry"
    if path in ("/api/alerts/test", "/api/dead-letters") or (path == "/api/audit/hold" and method != "GET"):
        return "admin"
    if path.startswith(("/api/alerts/silences", "/api/alerts/ack")) and method != "GET":  # silence, expire, ack
        return "admin"
    return "read"


def routes(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{url}/openapi.json").json()
    out = []
    for path, methods in spec["paths"].items():
        if path.startswith(("/api/", "/ingest/", "/v1/")):
            out += [(method.upper(), re.sub(r"\{[^}]+\}", "x", path)) for method in methods]
    return sorted(out)


def call(url: str, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = b"[]" if method == "POST" else None
    if path == "/ingest/cloudtrail":
        body = cloudtrail_set.technique_file("defense-evasion.cloudtrail-stop")
    elif path.startswith("/ingest/telemetry"):
        body = wire.telemetry_batch()
    if path == "/api/search/tail":
        with httpx.stream(method, f"{url}{path}", headers=headers, timeout=30) as response:
            return response.status_code
    return httpx.request(method, f"{url}{path}", content=body, headers=headers, timeout=30).status_code


def test_every_route_needs_its_scope(up: tuple[str, Process]) -> None:
    url, _ = up
    found = routes(url)
    assert {scope_of(m, p) for m, p in found} == {"telemetry", "audit", "read", "admin"}
    assert len(found) >= 20
    wrong = []
    for method, path in found:
        needed = scope_of(method, path)
        if call(url, method, path, None) != 401 or call(url, method, path, "not-a-token") != 401:
            wrong.append(f"{method} {path}: answered without a valid token")
        for token, grant in TOKENS.items():
            status = call(url, method, path, token)
            allowed = needed in parse_grant(grant).scopes
            if allowed and status in (401, 403) or not allowed and status != 403:
                wrong.append(f"{method} {path} with {grant!r}: {status}")
    assert not wrong, "\n".join(wrong)


def test_a_telemetry_token_can_not_write_audit_events_or_read(up: tuple[str, Process]) -> None:
    url, _ = up
    headers = {"Authorization": "Bearer tok-telemetry"}
    forged = cloudtrail_set.technique_file("persistence.lambda-overwrite-code")
    refused = httpx.post(f"{url}/ingest/cloudtrail", content=forged, headers=headers)
    assert refused.status_code == 403 and "'audit' scope" in refused.json()["detail"]
    firehose = httpx.post(
        f"{url}/ingest/firehose",
        content=wire.firehose_delivery(),
        headers={"X-Amz-Firehose-Access-Key": "tok-telemetry"},
    )
    assert firehose.status_code == 200  # its own job, with Firehose's access-key header
    assert httpx.get(f"{url}/api/audit", headers=headers).status_code == 403
    reader = {"Authorization": "Bearer tok-read"}
    assert httpx.post(f"{url}/ingest/telemetry", content=wire.telemetry_batch(), headers=reader).status_code == 403
    rows = httpx.get(f"{url}/api/audit", params={"since": "20000d"}, headers=reader).json()["results"]
    forged_ids = {record["eventID"] for record in orjson.loads(forged)}
    assert not forged_ids & {row["event_id"] for row in rows}  # nothing the telemetry token sent reached the trail


def test_tokens_without_scopes_work_and_are_warned_about(up: tuple[str, Process]) -> None:
    url, proc = up
    everything = {"Authorization": "Bearer tok-everything"}
    assert httpx.post(f"{url}/ingest/cloudtrail", content=orjson.dumps([]), headers=everything).status_code in (
        200,
        400,
    )
    assert httpx.get(f"{url}/api/stats", headers=everything).status_code == 200
    assert "1 token(s) name no scopes" in Path(proc.log_path).read_text()


def test_an_unknown_scope_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown token scope reed"):
        parse_grant("acme:reed")
    assert parse_grant("acme:read+admin").scopes == {"read", "admin"}
    assert parse_grant("").tenant == "default"
