"""`fnscope up` end to end, as a user runs it: a real process, real HTTP, chDB on disk, a payload in every format
(tests/fixtures)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import FNSCOPE, Process, all_stored, free_port, wait_http
from tests.fixtures import cloudtrail_set, wire


def _post(url: str, path: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, headers=headers, timeout=60)


def test_every_format_is_stored_and_queryable(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    r = _post(
        url,
        "/ingest/telemetry?function=checkout&version=7&region=eu-west-1&account=111122223333",
        gzip.compress(wire.telemetry_batch()),
        **{"Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] > 0

    cloudtrail = cloudtrail_set.technique_file("persistence.lambda-overwrite-code")
    r = _post(url, "/ingest/cloudtrail", cloudtrail)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(json.loads(cloudtrail)), "rejected": 0}

    r = _post(url, "/ingest/cloudwatch", wire.cloudwatch_gzip())
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "rejected": 0}
    r = _post(url, "/ingest/firehose", wire.firehose_delivery("ed4acda5-034f-9f42-bba1-f29aea6d7d8f"))
    assert r.status_code == 200, r.text
    assert r.json()["requestId"] == "ed4acda5-034f-9f42-bba1-f29aea6d7d8f"

    r = _post(url, "/ingest/apigateway?api=a1b2c3&stage=prod", json.dumps(wire.apigateway_line()).encode())
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1

    r = _post(url, "/v1/logs", wire.otlp_logs_json(), **{"Content-Type": "application/json"})
    assert r.status_code == 200, r.text

    all_stored(url)
    # The audit trail answers "who changed this function's code".
    audit = httpx.get(f"{url}/api/audit", params={"action": "UpdateFunctionCode", "since": "20000d"}).json()
    assert [(row["action"], row["function"]) for row in audit["results"]] == [
        ("UpdateFunctionCode20150331v2", "billing-sync")
    ], "the overwrite-code detonation must be found"

    # Logs from the telemetry batch are searchable.
    found = httpx.get(f"{url}/api/search", params={"q": "hello", "since": "20000d"}).json()["results"]
    assert any(row["function"] == "checkout" and "hello" in row["message"] for row in found)


def test_redelivery_never_shows_twice(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    body = cloudtrail_set.technique_file("initial-access.console-login-without-mfa")
    records = json.loads(body)
    for _ in range(3):
        assert _post(url, "/ingest/cloudtrail", body).status_code == 200
    all_stored(url)
    rows = httpx.get(f"{url}/api/audit", params={"since": "20000d", "limit": 1000}).json()["results"]
    assert sorted(r["event_id"] for r in rows) == sorted(r["eventID"] for r in records)


def test_unusable_body_is_400_and_dead_lettered(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    r = _post(url, "/ingest/cloudtrail", b"this is not json {")
    assert r.status_code == 400
    assert r.json()["detail"]
    all_stored(url)
    dead = httpx.get(f"{url}/api/dead-letters").json()["results"]
    assert any(d["source"] == "cloudtrail" and d["raw_preview"].startswith("this is not json") for d in dead)


def test_partly_bad_batch_keeps_the_good_records(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    good = cloudtrail_set.technique("defense-evasion.cloudtrail-stop")
    body = json.dumps([*good, {"eventName": "NoTimeAtAll"}, 42]).encode()
    r = _post(url, "/ingest/cloudtrail", body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(good)
    assert r.json()["rejected"] == 2
    all_stored(url)
    dead = httpx.get(f"{url}/api/dead-letters", params={"source": "cloudtrail"}).json()["results"]
    assert len(dead) == 2 and all(d["reason"] for d in dead)


def test_gzip_bomb_is_413_not_oom(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 1024 * 1024
    r = _post(url, "/ingest/cloudtrail", bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413


def test_kill9_then_restart_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*FNSCOPE, "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)]
    acked: set[str] = set()
    proc = Process(args, tmp_path / "up.log").start()
    wait_http(f"{url}/healthz", proc=proc.proc)
    for name in cloudtrail_set.TECHNIQUES:
        body = cloudtrail_set.technique_file(name)
        if _post(url, "/ingest/cloudtrail", body).status_code == 200:
            acked.update(r["eventID"] for r in json.loads(body))
    proc.kill9()

    proc = Process(args, tmp_path / "up2.log").start()
    try:
        wait_http(f"{url}/healthz", proc=proc.proc)
        all_stored(url)  # what the killed process acknowledged is in the log, stored by this one
        rows = httpx.get(f"{url}/api/audit", params={"since": "20000d", "limit": 100000}).json()["results"]
        stored = [r["event_id"] for r in rows]
        assert len(acked) == len(cloudtrail_set.all_records())
        assert set(stored) == acked
        assert len(stored) == len(set(stored)), "no duplicates visible"
    finally:
        proc.stop()


@pytest.mark.parametrize("tokens", ["secret-a:team-a,secret-b:team-b"])
def test_tokens_scope_every_query_to_its_tenant(tmp_path: Path, tokens: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [*FNSCOPE, "up", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
        tmp_path / "up.log",
        env={"FNSCOPE_TOKENS": tokens},
    ).start()
    try:
        wait_http(f"{url}/healthz", proc=proc.proc)
        body = cloudtrail_set.technique_file("defense-evasion.cloudtrail-stop")
        assert _post(url, "/ingest/cloudtrail", body).status_code == 401
        assert _post(url, "/ingest/cloudtrail", body, Authorization="Bearer secret-a").status_code == 200
        all_stored(url, "Bearer secret-a")
        a = httpx.get(f"{url}/api/audit", params={"since": "20000d"}, headers={"Authorization": "Bearer secret-a"})
        b = httpx.get(f"{url}/api/audit", params={"since": "20000d"}, headers={"Authorization": "Bearer secret-b"})
        assert len(a.json()["results"]) == len(json.loads(body))
        assert b.json()["results"] == []
    finally:
        proc.stop()


def test_a_line_sent_by_extension_and_by_subscription_shows_once(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    when, rid = "2026-11-27T05:00:00.123Z", "5f1d4c2a-8b9e-4f3a-9d2c-7e6b5a4c3d21"
    text = f"{when}\t{rid}\tINFO\tcharged card for order ord_77f1"
    structured = {"level": "INFO", "message": "stock reserved", "order_id": "ord_77f1", "requestId": rid}
    telemetry_body = json.dumps(
        [{"time": when, "type": "function", "record": text}, {"time": when, "type": "function", "record": structured}]
    ).encode()
    ms = int(datetime.fromisoformat(when).timestamp() * 1000)
    subscription = {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "/aws/lambda/payments",
        "logStream": "2026/11/27/[$LATEST]8c1f",
        "subscriptionFilters": ["to-fnscope"],
        "logEvents": [
            {"id": "37904812307468170154390418342097024531205118467893411840", "timestamp": ms, "message": text + "\n"},
            {
                "id": "37904812307468170154390418342097024531205118467893411841",
                "timestamp": ms,
                "message": json.dumps(structured) + "\n",
            },
        ],
    }
    for _ in range(2):  # each path, and each path again (a retried delivery)
        r = _post(url, "/ingest/telemetry?function=payments", telemetry_body)
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
        r = _post(url, "/ingest/cloudwatch", gzip.compress(json.dumps(subscription).encode()))
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    all_stored(url)
    found = httpx.get(
        f"{url}/api/search", params={"q": f"request_id:{rid}", "function": "payments", "since": "20000d", "limit": 100}
    ).json()["results"]
    assert sorted(row["message"].split("\t")[-1] for row in found) == [
        "charged card for order ord_77f1",
        "stock reserved",
    ]
