"""Silences and acknowledgements made through the API, on a real `fnscope up` with tokens and its alert webhook
pointing at a real local receiver: a silence holds back a matching alert's notification (the receiver sees nothing)
until it ends, by its own duration or expired early, and survives a restart; an ack is shown with who made it.
Also what /api/audit answers beside each row: the record's request parameters and response elements, bounded."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from fnscope.alerts.config import AlertSettings, Silence
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.signals import Signals
from fnscope.alerts.silences import Silences
from fnscope.alerts.store import MAX_ACTIVE_SILENCES
from fnscope.auth import fingerprint
from fnscope.query.audit_details import CUT_KEY, MAX_ITEMS, MAX_PART_BYTES, MAX_STRING, bounded
from tests.conftest import FNSCOPE, Process, all_stored, free_port, wait_http
from tests.fixtures import cloudtrail_set
from tests.test_alerts_rules import throttle
from tests.test_alerts_support import Receiver

ADMIN, READER, OTHER, SENDER = "tok-ops", "tok-viewer", "tok-globex", "tok-trail"
TOKENS = f"{ADMIN}:acme:read+admin,{READER}:acme:read,{OTHER}:globex:read+admin,{SENDER}:acme:audit+telemetry"
CONFIG = """
alerts:
  tick_s: 0.2
  rules:
    - {name: cloudtrail-stopped, window_s: 60, resolve_after_s: 600}
  silences:
    - {matchers: {tenant: globex, rule: canary-regression}, comment: "globex migration window"}
"""


class Up:
    def __init__(self, tmp: Path, receiver: Receiver) -> None:
        self.tmp, self.port = tmp, free_port()
        (tmp / "fnscope.yaml").write_text(CONFIG)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "FNSCOPE_TOKENS": TOKENS,
            "FNSCOPE_ALERT_WEBHOOK_URL": f"{receiver.url}/hook",
            "FNSCOPE_CONFIG": str(tmp / "fnscope.yaml"),
        }
        self.proc: Process | None = None

    def start(self) -> None:
        args = [*FNSCOPE, "up", "--data-dir", str(self.tmp / "data"), "--port", str(self.port)]
        self.proc = Process(args, self.tmp / "up.log", env=self.env).start()
        wait_http(f"{self.url}/healthz", proc=self.proc.proc)

    def stop(self) -> None:
        assert self.proc is not None and self.proc.stop() == 0, self.proc and self.proc.output()[-3000:]

    def call(self, method: str, path: str, token: str = ADMIN, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def get(self, path: str, token: str = ADMIN, **params: Any) -> Any:
        response = self.call("GET", path, token, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def trail(self, *records: dict[str, Any]) -> None:
        response = self.call("POST", "/ingest/cloudtrail", SENDER, content=json.dumps({"Records": list(records)}))
        assert response.status_code == 200 and response.json()["accepted"] == len(records), response.text


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Up]:
    instance = Up(tmp_path_factory.mktemp("silences"), receiver)
    instance.start()
    yield instance
    instance.stop()


def stop_logging(name: str, **extra: Any) -> dict[str, Any]:
    """CloudTrail's StopLogging by the IAM user ``name``, just now, with an event id of its own."""
    record = cloudtrail_set.record(
        f"silence-test-{uuid.uuid4()}", 0, "StopLogging", "cloudtrail.amazonaws.com", at=datetime.now(UTC),
        identity=cloudtrail_set.user(name), request={"name": "arn:aws:cloudtrail:eu-west-1:111122223333:trail/main"},
    )  # fmt: skip
    return {**record, **extra}


def principal(name: str) -> str:
    return cloudtrail_set.user(name)["arn"]


def pages(receiver: Receiver, name: str) -> list[Any]:
    return receiver.matching(
        "/hook", lambda b: b.get("rule") == "cloudtrail-stopped" and principal(name) in b["summary"]
    )


def alert_of(up: Up, name: str, token: str = READER) -> dict[str, Any]:
    """The cloudtrail-stopped alert of principal ``name`` once it is firing (the evaluator runs as events are stored)."""
    all_stored(up.url, f"Bearer {SENDER}")
    for _ in range(100):
        found = [a for a in up.get("/api/alerts", token)["alerts"] if a["labels"].get("principal") == principal(name)]
        if found and found[0]["state"] == "firing":
            return found[0]
        time.sleep(0.1)  # a moment for the evaluator
    raise AssertionError(f"no firing alert for {name}")


def held_back(up: Up, name: str) -> list[dict[str, Any]]:
    """The history rows of ``name``'s alert once its firing notice was handled (sent or held back)."""
    for _ in range(200):
        rows = [
            r
            for r in up.get("/api/alerts/history", rule="cloudtrail-stopped")["history"]
            if r["labels"].get("principal") == principal(name) and r["kind"] == "firing"
        ]
        if rows:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"the firing of {name}'s alert was never recorded")


def test_a_silence_holds_back_the_page_until_it_ends_and_survives_a_restart(up: Up, receiver: Receiver) -> None:
    def silence(name: str, duration: str, comment: str) -> dict[str, Any]:
        body = {"matchers": {"rule": "cloudtrail-stopped", "principal": principal(name)}, "duration": duration,
                "comment": comment}  # fmt: skip
        response = up.call("POST", "/api/alerts/silences", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    # only an admin token makes one; a read token sees them; another tenant neither sees nor ends them
    denied = up.call("POST", "/api/alerts/silences", READER, json={"matchers": {"rule": "x"}, "comment": "no"})
    assert denied.status_code == 403
    short = silence("mallory", "3s", "trail migration")
    long = silence("trudy", "1h", "planned maintenance")
    assert long["created_by"] == f"token {fingerprint(ADMIN)}" and long["state"] == "active"
    assert {s["id"] for s in up.get("/api/alerts/silences", READER)["silences"]} == {short["id"], long["id"]}
    assert up.get("/api/alerts/silences", OTHER)["silences"] == []
    assert up.call("DELETE", f"/api/alerts/silences/{long['id']}", OTHER).status_code == 404

    # silenced while the silence lasts: the alert fires (and says why it is quiet), the receiver gets nothing
    up.trail(stop_logging("mallory"))
    alert = alert_of(up, "mallory")
    assert alert["silenced_by"] == f"trail migration (silenced by token {fingerprint(ADMIN)})"
    assert [r["delivery"] for r in held_back(up, "mallory")] == ["silenced"]
    assert pages(receiver, "mallory") == []
    # when it ends, the alert still firing is paged
    [page] = receiver.wait_for("/hook", lambda b: principal("mallory") in b.get("summary", ""), timeout=20)
    assert page.body["status"] == "firing"
    assert page.at >= datetime.fromisoformat(short["ends_at"]).timestamp()

    # the other silence was stored: a restart keeps it, and the restarted evaluator holds back what it matches
    up.stop()
    up.start()
    listed = {s["id"]: s for s in up.get("/api/alerts/silences", READER)["silences"]}
    assert listed[long["id"]]["state"] == "active" and listed[long["id"]]["comment"] == "planned maintenance"
    up.trail(stop_logging("trudy"))
    alert_of(up, "trudy")
    assert [r["delivery"] for r in held_back(up, "trudy")] == ["silenced"]
    assert pages(receiver, "trudy") == []
    # a principal no silence names is paged at once
    up.trail(stop_logging("eve"))
    receiver.wait_for("/hook", lambda b: principal("eve") in b.get("summary", ""), timeout=20)

    # ended early by an admin: who ended it is kept, and the alert held back is paged
    ended = up.call("DELETE", f"/api/alerts/silences/{long['id']}")
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    assert ended.json()["expired_by"] == f"token {fingerprint(ADMIN)}"
    receiver.wait_for("/hook", lambda b: principal("trudy") in b.get("summary", ""), timeout=20)
    assert len(pages(receiver, "trudy")) == 1


def test_an_ack_is_shown_with_who_and_the_alert_stays_listed(up: Up) -> None:
    up.trail(stop_logging("oscar"))
    alert = alert_of(up, "oscar")
    assert alert["severity"] == "critical" and alert["ack"] is None
    assert up.call("POST", "/api/alerts/ack", READER, json={"fingerprint": alert["fingerprint"]}).status_code == 403
    assert up.call("POST", "/api/alerts/ack", OTHER, json={"fingerprint": alert["fingerprint"]}).status_code == 404
    done = up.call("POST", "/api/alerts/ack", json={"fingerprint": alert["fingerprint"], "comment": "on it"})
    assert done.status_code == 200, done.text
    after = alert_of(up, "oscar")
    assert after["state"] == "firing"
    assert after["ack"]["by"] == f"token {fingerprint(ADMIN)}" and after["ack"]["comment"] == "on it"
    acked_at = datetime.fromisoformat(after["ack"]["at"])
    assert datetime.fromisoformat(after["active_since"]) <= acked_at <= datetime.now(UTC)


def test_silence_requests_are_checked(up: Up) -> None:
    bad = [
        ({"matchers": {}, "comment": "all"}, "matchers"),
        ({"matchers": {"tenant": "globex"}, "comment": "x"}, "matchers"),
        ({"matchers": {"rule": "x"}, "comment": ""}, "comment"),
        ({"matchers": {"rule": "x"}, "comment": "x", "duration": "soon"}, "duration"),
        ({"matchers": {"rule": "x"}, "comment": "x", "duration": "400d"}, "duration"),
    ]
    for body, named in bad:
        response = up.call("POST", "/api/alerts/silences", json=body)
        assert response.status_code in (400, 422) and named in response.text, (body, response.text)


def test_a_tenant_sees_only_the_configured_silences_that_may_hold_its_alerts(up: Up) -> None:
    assert up.get("/api/alerts/silences", READER)["configured"] == []
    (mine,) = up.get("/api/alerts/silences", OTHER)["configured"]
    assert mine["comment"] == "globex migration window"


def test_a_tenant_has_at_most_so_many_silences_in_force(up: Up) -> None:
    body = {"matchers": {"rule": "cloudtrail-stopped", "principal": "nobody"}, "duration": "1h", "comment": "load"}
    made = []
    for _ in range(MAX_ACTIVE_SILENCES):
        response = up.call("POST", "/api/alerts/silences", OTHER, json=body)
        assert response.status_code == 200, response.text
        made.append(response.json()["id"])
    refused = up.call("POST", "/api/alerts/silences", OTHER, json=body)
    assert refused.status_code == 409 and "expire some first" in refused.json()["detail"]
    assert up.call("DELETE", f"/api/alerts/silences/{made[0]}", OTHER).status_code == 200
    assert up.call("POST", "/api/alerts/silences", OTHER, json=body).status_code == 200


def test_audit_rows_carry_request_parameters_and_response_elements_bounded(up: Up) -> None:
    put = stop_logging("carol", eventName="PutFunctionConcurrency20171031", eventSource="lambda.amazonaws.com",
                       requestParameters={"functionName": "checkout", "reservedConcurrentExecutions": 7},
                       responseElements={"reservedConcurrentExecutions": 7})  # fmt: skip
    wide = stop_logging("carol", eventName="UpdateFunctionConfiguration20150331v2", eventSource="lambda.amazonaws.com",
                        requestParameters={f"key{i}": "v" * (MAX_STRING + 10) for i in range(MAX_ITEMS + 5)})  # fmt: skip
    huge = stop_logging("carol", eventName="PutBucketPolicy", eventSource="s3.amazonaws.com",
                        requestParameters={"policy": "x" * (MAX_PART_BYTES + 1)})  # fmt: skip
    up.trail(put, wide, huge)
    all_stored(up.url, f"Bearer {SENDER}")
    found = up.get("/api/audit", READER, principal="carol", since="1h", details="true")["results"]
    rows = {r["event_id"]: r for r in found}
    assert rows[put["eventID"]]["request_parameters"] == put["requestParameters"]
    assert rows[put["eventID"]]["response_elements"] == {"reservedConcurrentExecutions": 7}
    cut = rows[wide["eventID"]]["request_parameters"]
    assert len(cut) == MAX_ITEMS + 1 and cut[CUT_KEY] == "5 more keys not shown"
    assert cut["key0"].endswith(f"… [cut: {MAX_STRING + 10:,} characters]")
    assert rows[wide["eventID"]]["response_elements"] is None
    assert "too large to show" in rows[huge["eventID"]]["request_parameters"][CUT_KEY]
    # without them unless asked (as the CLI asks), and never for more rows than a page
    bare = up.get("/api/audit", READER, principal="carol", since="1h")["results"]
    assert bare and all("request_parameters" not in r for r in bare)
    assert up.call("GET", "/api/audit", READER, params={"details": "true", "limit": 5000}).status_code == 400


def test_bounded_cuts_depth_lists_and_total_size() -> None:
    deep: Any = "bottom"
    for _ in range(20):
        deep = {"down": deep}
    assert "not shown" in json.dumps(bounded(deep))
    assert bounded(list(range(MAX_ITEMS + 3)))[-1] == f"{CUT_KEY} 3 more items not shown"
    many = bounded([{"k": i} for i in range(MAX_ITEMS)] * 20)
    assert len(json.dumps(many)) < 20_000
    assert bounded({"a": None, "b": True, "c": 1.5}) == {"a": None, "b": True, "c": 1.5}


def test_the_evaluator_reads_stored_silences_when_a_notice_is_due_and_keeps_the_last_good_ones() -> None:
    """Clock-driven: a stored silence (of its own tenant) holds a firing back; once it is gone the alert, still
    firing, is notified at the next evaluation; a store that stops answering leaves the last silences in force."""
    clock = Clock()
    stored: list[Silence] = []
    failing = False

    def read() -> list[Silence]:
        if failing:
            raise ConnectionError("store down")
        return list(stored)

    rules = AlertSettings(rules=[{"name": "function-throttled", "window_s": 60, "resolve_after_s": 600}])
    ev = Evaluator(rules.effective_rules(), Signals(3600, 1000), Silences([], read), clock)
    ends = datetime.fromtimestamp(clock.now + 30, UTC)
    stored.append(Silence(matchers={"tenant": "acme", "function": "a"}, ends_at=ends, comment="held"))
    # the same function in another tenant (a second earlier: the test's event ids come from function and time)
    _, notices = ev.ingest(throttle("a", 1, clock.now, "acme") + throttle("a", 1, clock.now - 1, "globex"))
    assert sorted((n.instance.tenant, n.silenced_by) for n in notices) == [("acme", "held"), ("globex", "")]
    clock.now += 1
    failing = True  # the store is down: the silence read last still holds
    assert ev.tick()[1] == []
    failing = False
    clock.now += 1
    assert ev.tick()[1] == []  # still silenced: nothing sent twice, nothing sent early
    stored.clear()  # expired early (or ended): the alert still firing is notified once
    clock.now += 1
    [notice] = ev.tick()[1]
    assert (notice.kind, notice.instance.tenant, notice.silenced_by) == ("firing", "acme", "")
    clock.now += 1
    assert ev.tick()[1] == []


def test_a_silence_on_an_alert_already_paged_holds_its_repeats_without_a_row_each_evaluation() -> None:
    clock = Clock()
    stored: list[Silence] = []
    rules = AlertSettings(rules=[{"name": "function-throttled", "window_s": 60, "resolve_after_s": 10**6,
                                  "repeat_interval_s": 60}])  # fmt: skip
    ev = Evaluator(rules.effective_rules(), Signals(3600, 1000), Silences([], lambda: list(stored)), clock)
    [paged] = ev.ingest(throttle("a", 1, clock.now, "acme"))[1]
    assert (paged.kind, paged.silenced_by) == ("firing", "")
    until = datetime.fromtimestamp(clock.now + 600, UTC)
    stored.append(Silence(matchers={"tenant": "acme", "function": "a"}, ends_at=until, comment="held"))

    def evaluations(steps: int) -> list[Any]:  # every 15 s, the alert firing all along
        out = []
        for _ in range(steps):
            clock.now += 15
            out += ev.ingest(throttle("a", 1, clock.now, "acme"))[1] + ev.tick()[1]
        return out

    # was a "repeat, silenced" notice (and a history row) at every evaluation once a repeat was due
    assert evaluations(39) == []  # until just before the silence ends
    after = evaluations(9)  # over at 600 s: repeats resume, one a minute
    assert [(n.kind, n.silenced_by, n.at - until.timestamp()) for n in after] == [
        ("repeat", "", t) for t in (0, 60, 120)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now
