"""The console's audit and alerts pages in a real Chromium against a real `fnscope up` fed a simulated fleet (the
fixture of test_console): the audit page opens on the changes an auditor starts from, with read-only calls and data
events one visible toggle away (counts as the API answers them), and a row opens to the call's parameters as text;
the alerts page colours severities, shows labels as chips, and acknowledges and silences through the API."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from fnscope.auth import fingerprint
from tests.fixtures import cloudtrail_set
from tests.test_console import WAIT_MS, A, Console, Fleet, browser, console, fleet, watching  # noqa: F401 (fixtures)

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
DEFAULT_SCOPE = {"hide_reads": "true", "category": ["Management", "Insight"]}


def send(to: Fleet, *records: dict[str, Any]) -> None:
    response = httpx.post(
        f"{to.url}/ingest/cloudtrail",
        params={"wait": "stored"},
        content=json.dumps({"Records": list(records)}),
        headers={"Authorization": f"Bearer {A}"},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["accepted"] == len(records), response.text


def record(name: str, source: str, user: str, **kwargs: Any) -> dict[str, Any]:
    """A CloudTrail record of just now, with an event id of its own."""
    at = datetime.now(UTC)
    return cloudtrail_set.record(
        f"console-{uuid.uuid4()}", 0, name, source, at=at, identity=cloudtrail_set.user(user), **kwargs
    )


def events(page: Page) -> Locator:
    return page.locator(".audit-events tbody tr:not(.audit-details)")


def actions(page: Page) -> list[str]:
    """The action column, without the API dates Lambda's event names carry."""
    return [re.sub(r"\d{8}(v\d+)?$", "", a) for a in events(page).locator("td:nth-child(4)").all_inner_texts()]


def without_tenant(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "tenant"}


def test_audit_opens_on_changes_and_a_row_shows_the_calls_parameters(console: Console, fleet: Fleet) -> None:  # noqa: F811
    function = fleet.sim.functions[0].name
    read = record("GetFunction20150331v2", "lambda.amazonaws.com", "auditor", read_only=True,
                  request={"functionName": function})  # fmt: skip
    hostile = record("UpdateFunctionConfiguration20150331v2", "lambda.amazonaws.com", "mallory",
                     request={"functionName": function, "description": HOSTILE})  # fmt: skip
    send(fleet, read, hostile)
    assert fleet.cloudtrail["Invoke"] > 0

    default = fleet.api("/api/audit", since="90d", limit=500, **DEFAULT_SCOPE)["results"]
    with_data = fleet.api("/api/audit", since="90d", limit=500, hide_reads="true")["results"]
    everything = fleet.api("/api/audit", since="90d", limit=500)["results"]
    assert len(default) < len(with_data) < len(everything) < 500  # each toggle shows more, none cut by the limit

    page = console.open("#/audit")
    expect(events(page)).to_have_count(len(default), timeout=WAIT_MS)
    expect(page.locator(".card h2 .count")).to_have_text(f"({len(default)} shown, newest first)")
    expect(page.locator(".audit-scope .scope-text")).to_have_text(
        "Management events that change something: read-only calls and data events are hidden."
    )
    assert "Invoke" not in actions(page) and "GetFunction" not in actions(page)
    assert {"PutFunctionConcurrency", "UpdateFunctionConfiguration", "ConsoleLogin"} <= set(actions(page))
    console.shot("audit-default")

    page.get_by_label("Data events").check()
    expect(events(page)).to_have_count(len(with_data), timeout=WAIT_MS)
    assert "data=show" in page.url
    assert actions(page).count("Invoke") == fleet.cloudtrail["Invoke"]
    page.get_by_label("Read-only calls").check()
    expect(events(page)).to_have_count(len(everything), timeout=WAIT_MS)
    assert "reads=show" in page.url and "GetFunction" in actions(page)
    expect(page.locator(".audit-scope .scope-text")).to_contain_text("Showing every event")

    # the concurrency value each PutFunctionConcurrency set, as the page shows it when the row is opened
    page.goto(f"{fleet.url}/#/audit?action=PutFunctionConcurrency")
    reserved = {s.name: s.reserved_concurrency for s in fleet.sim.functions if s.reserved_concurrency is not None}
    expect(events(page)).to_have_count(len(reserved), timeout=WAIT_MS)
    for row in events(page).all():
        name = row.locator("td:nth-child(5)").inner_text()
        row.locator("button.expand").click()
        part = row.locator("xpath=following-sibling::tr[1]").locator('[data-part="request_parameters"]')
        expect(part.locator("li").filter(has_text="reservedConcurrentExecutions")).to_have_text(
            f"reservedConcurrentExecutions: {reserved[name]}"
        )
        expect(part.locator("li").filter(has_text="functionName")).to_have_text(f"functionName: {name}")
    console.shot("audit-parameters")

    # a value in a record is text, never markup
    page.goto(f"{fleet.url}/#/audit?principal=mallory")
    expect(events(page)).to_have_count(1, timeout=WAIT_MS)
    events(page).first.locator("button.expand").click()
    details = page.locator(".audit-details")
    expect(details.locator("li").filter(has_text="description")).to_have_text(f"description: {HOSTILE}")
    assert details.locator("img").count() == 0 and page.title() != "pwned"


def test_alerts_coloured_by_severity_acknowledged_and_silenced_from_the_page(browser: Browser, fleet: Fleet) -> None:  # noqa: F811
    stopped = record("StopLogging", "cloudtrail.amazonaws.com", "trail-stopper",
                     request={"name": "arn:aws:cloudtrail:eu-west-1:111122223333:trail/main"})  # fmt: skip
    login = record("ConsoleLogin", "signin.amazonaws.com", "no-mfa-user", response={"ConsoleLogin": "Success"},
                   additionalEventData={"MFAUsed": "No"})  # fmt: skip
    send(fleet, stopped, login)

    def firing() -> dict[str, dict[str, Any]]:
        out = {}
        for alert in fleet.api("/api/alerts")["alerts"]:
            if alert["state"] == "firing" and alert["rule"] in ("cloudtrail-stopped", "console-login-without-mfa"):
                out[alert["rule"]] = alert
        return out

    for _ in range(100):
        if len(firing()) == 2:
            break
        time.sleep(0.1)
    alerts = firing()
    assert len(alerts) == 2, "the CloudTrail records never raised their alerts"
    assert {r: a["severity"] for r, a in alerts.items()} == {
        "cloudtrail-stopped": "critical",
        "console-login-without-mfa": "warning",
    }

    with watching(browser, fleet.url, A) as watched:
        page = watched.open("#/alerts")
        critical = page.locator(".alerts tbody tr").filter(has_text="cloudtrail-stopped")
        warning = page.locator(".alerts tbody tr").filter(has_text="console-login-without-mfa")
        expect(critical.locator(".sev")).to_have_text("critical", timeout=WAIT_MS)
        expect(warning.locator(".sev")).to_have_text("warning")
        colour = "(e) => getComputedStyle(e).color"
        assert critical.locator(".sev").evaluate(colour) == "rgb(180, 35, 24)"  # --bad
        assert warning.locator(".sev").evaluate(colour) == "rgb(181, 71, 8)"  # --warn
        # one chip per label (the tenant is the token's and not shown), each reading name=value
        labels = without_tenant(alerts["cloudtrail-stopped"]["labels"])
        expect(critical.locator(".chip")).to_have_text([f"{k}={v}" for k, v in labels.items()])

        critical.locator("button.ack").click()
        who = f"token {fingerprint(A)}"
        expect(critical.locator(".acked")).to_contain_text(f"acknowledged by {who}", timeout=WAIT_MS)
        expect(critical.locator(".badge")).to_have_text("firing")  # still listed, marked
        assert firing()["cloudtrail-stopped"]["ack"]["by"] == who

        warning.locator("button.silence").click()
        form = page.locator("form.silence-form")
        form.locator('select[name="duration"]').select_option("15m")
        form.locator('input[name="comment"]').fill("known: SSO migration")
        form.get_by_role("button", name="Create silence").click()
        silences = page.locator(".silences tbody tr")
        expect(silences).to_have_count(1, timeout=WAIT_MS)
        expect(silences.first).to_contain_text("known: SSO migration")
        expect(silences.first).to_contain_text(who)
        expect(warning.locator(".silenced")).to_have_text(f"silenced: known: SSO migration (silenced by {who})")
        [made] = fleet.api("/api/alerts/silences")["silences"]  # the alert's own labels: it holds that alert back
        login_labels = alerts["console-login-without-mfa"]["labels"]
        assert made["matchers"] == {"rule": "console-login-without-mfa", **without_tenant(login_labels)}
        watched.shot("alerts-acked-silenced")

        silences.first.get_by_role("button", name="Expire now").click()
        expect(silences.first.locator(".badge")).to_have_text("expired", timeout=WAIT_MS)
        assert fleet.api("/api/alerts/silences")["silences"][0]["expired_by"] == who
        expect(warning.locator(".silenced")).to_have_count(0)

        page.set_viewport_size({"width": 390, "height": 844})
        for hash_ in ("#/alerts", "#/audit"):
            page.goto(f"{fleet.url}/{hash_}")
            page.locator(".card table").first.wait_for(timeout=WAIT_MS)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, hash_
