"""The fleet page at a glance, on a desk (1440×900) and on a phone (390×844), in Debian's Chromium against a real
`fnscope up` fed a simulated fleet that throttles and fails (the fixture of test_console): states coloured by the
dashboards' thresholds, nothing wider than the screen, no stat cut, refreshes while shown and none while hidden,
times in the zone chosen. Screenshots go to test-artifacts/console/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from fnscope.dashboards.panels import (
    ERROR_RATE_CRITICAL,
    ERROR_RATE_WARN,
    P99_OF_TIMEOUT_CRITICAL,
    P99_OF_TIMEOUT_WARN,
    STATE_ORDER,
    THROTTLE_RATE_CRITICAL,
)
from tests.test_alerts_concurrency_controls import ACCOUNT, concurrency_record
from tests.test_console import ARTIFACTS, WAIT_MS, A, Fleet, _panel, browser, fleet  # noqa: F401 (fixtures)
from tests.test_fleet_states import configuration_record

SIZES = {"desk": (1440, 900), "phone": (390, 844)}


def _page(browser: Browser, fleet: Fleet, size: str, zone: str = "", refresh: int = 0, tz: str = "") -> Page:  # noqa: F811
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, **({"timezone_id": tz} if tz else {}))
    script = f"localStorage.setItem('fnscope.token', '{A}'); localStorage.setItem('fnscope.refresh', '{refresh}');"
    if zone:
        script += f"localStorage.setItem('fnscope.zone', '{zone}');"
    context.add_init_script(script)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture
def pages(browser: Browser) -> Iterator[list[Page]]:  # noqa: F811
    opened: list[Page] = []
    yield opened
    for page in opened:
        assert not page.errors, page.errors  # type: ignore[attr-defined]
        page.context.close()


def _expected_state(row: dict) -> str:
    n, e, t = row["invocations"], row["errors"], row["throttles"]
    # p99 as a share of the timeout (the simulator configures timeouts and writes `Task timed out` lines)
    near = row["p99_ms"] / row["timeout_ms"] if n and row["timeout_ms"] and row["p99_ms"] is not None else 0
    if e >= ERROR_RATE_CRITICAL * max(n, 1) or t >= THROTTLE_RATE_CRITICAL * max(n + t, 1):
        return "critical"
    if near >= P99_OF_TIMEOUT_CRITICAL:
        return "critical"
    if e >= ERROR_RATE_WARN * max(n, 1) or t > 0 or near >= P99_OF_TIMEOUT_WARN:
        return "warning"
    return "ok"


def _overflow(page: Page) -> dict:
    return page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            stats: [...document.querySelectorAll('.stat')].filter(s => s.scrollWidth > s.clientWidth).length,
            cards: [...document.querySelectorAll('.card')].filter(c => c.getBoundingClientRect().right > window.innerWidth + 1).length,
        })"""
    )


@pytest.mark.parametrize("size", SIZES)
def test_fleet_page_is_coloured_by_state_and_fits_the_screen(
    browser: Browser,  # noqa: F811
    fleet: Fleet,  # noqa: F811
    pages: list[Page],
    size: str,
) -> None:
    page = _page(browser, fleet, size)
    pages.append(page)
    page.goto(f"{fleet.url}/#/?range=1h")
    table = _panel(page, "Functions").locator("table")
    expect(table).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".panel-body .loading")).to_have_count(0, timeout=WAIT_MS)

    answer = fleet.api("/api/dashboards/fnscope-fleet/panels/8", since="1h")
    rows = [dict(zip(answer["columns"], r, strict=True)) for r in answer["rows"]]
    assert [r["state"] for r in rows] == [_expected_state(r) for r in rows]
    throttled = next(r for r in rows if r["function"] == fleet.throttled_function)
    assert throttled["throttles"] > 0 and throttled["state"] != "ok"
    order = ["critical", "warning", "ok"]
    assert [order.index(r["state"]) for r in rows] == sorted(order.index(r["state"]) for r in rows), "worst first"
    shown = table.locator("tbody tr")
    assert [re.sub("state-", "", shown.nth(i).get_attribute("class") or "") for i in range(len(rows))] == [
        r["state"] for r in rows
    ]
    assert "throttles" in table.locator("thead").inner_text()
    badge = table.locator("tbody tr.state-critical .badge, tbody tr.state-warning .badge").first
    red, green, _blue = map(int, re.findall(r"\d+", badge.evaluate("b => getComputedStyle(b).color"))[:3])
    assert red > green, "a warning or critical state is shown in red or amber"
    limits = _panel(page, "Concurrency against limits, per function").locator("tbody tr").first
    assert limits.locator("td").nth(4).inner_text().endswith("%")

    page.wait_for_timeout(500)  # charts size themselves to their boxes
    assert _overflow(page) == {"page": 0, "stats": 0, "cards": 0}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"fleet-{size}.png"), full_page=True)


def test_pages_refresh_while_shown_and_not_while_hidden(browser: Browser, fleet: Fleet, pages: list[Page]) -> None:  # noqa: F811
    page = _page(browser, fleet, "desk", refresh=10)
    pages.append(page)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/panels/" in r.url else None)
    page.goto(f"{fleet.url}/#/?range=1h")
    expect(page.locator("#refresh")).to_have_value("10")
    expect(page.locator(".panel-body .loading")).to_have_count(0, timeout=WAIT_MS)
    first = len(asked)
    page.wait_for_timeout(11_000)  # one interval of 10 s
    assert len(asked) >= 2 * first, "the panels were asked again after the interval"
    expect(_panel(page, "Functions").locator("table")).to_be_visible()  # redrawn in place, not blanked

    page.evaluate(
        """() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    hidden_from = len(asked)
    page.wait_for_timeout(12_000)
    assert len(asked) == hidden_from, "a hidden tab asks nothing"
    page.evaluate(
        """() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    page.wait_for_timeout(1500)
    assert len(asked) > hidden_from, "shown again, it catches up at once"


def test_times_follow_the_chosen_zone(browser: Browser, fleet: Fleet, pages: list[Page]) -> None:  # noqa: F811
    utc = _page(browser, fleet, "desk", zone="utc", tz="Asia/Kolkata")
    local = _page(browser, fleet, "phone", zone="local", tz="Asia/Kolkata")
    pages.extend([utc, local])
    newest = fleet.api("/api/search", since="1h", limit=1)["results"][0]
    shown = []
    for page in (utc, local):
        page.goto(f"{fleet.url}/#/search?range=1h")
        line = page.locator("ol.results li.line").first
        expect(line).to_be_visible(timeout=WAIT_MS)
        shown.append(line.locator("time").inner_text())
        message = line.locator(".message")
        assert message.bounding_box()["width"] > page.viewport_size["width"] / 2, "a message is not one letter wide"
    assert shown[0] == newest["time"].replace("T", " ")[:23].ljust(23, "0")[:23]
    hours, minutes = int(shown[1][11:13]) - int(shown[0][11:13]), int(shown[1][14:16]) - int(shown[0][14:16])
    assert (hours * 60 + minutes) % (24 * 60) == 330, shown  # Kolkata is UTC+5:30
    assert _overflow(local)["page"] == 0
    local.screenshot(path=str(ARTIFACTS / "search-phone.png"), full_page=True)


def test_a_disabled_function_and_one_near_its_timeout_stand_out(
    browser: Browser,  # noqa: F811
    fleet: Fleet,  # noqa: F811
    pages: list[Page],
) -> None:
    """Reserved concurrency 0 set through the audit trail: a disabled row, and above the tables who did it, when and
    from where; a function whose p99 is 97 % of its configured timeout: critical. (Runs last: it adds to the fleet.)"""
    now = datetime.now(UTC).replace(microsecond=0)
    records = [
        concurrency_record("legacy-sync", now.timestamp() - 120, 0, "oncall", "198.51.100.23"),
        configuration_record("slow-report", 3, now - timedelta(hours=1)),
    ]
    _post(fleet, "/ingest/cloudtrail", {"Records": records})
    reports = [
        {"time": (now - timedelta(seconds=20 - i * 0.1)).isoformat(), "type": "platform.report",
         "record": {"requestId": f"slow-{i}", "status": "success",
                    "metrics": {"durationMs": 2910.0, "billedDurationMs": 2911, "memorySizeMB": 256}}}
        for i in range(50)
    ]  # fmt: skip
    _post(fleet, "/ingest/telemetry", reports, function="slow-report")
    deadline = time.monotonic() + 60  # health aggregates are rebuilt in the background, a moment after the store
    while not {"legacy-sync", "slow-report"} <= {
        f["function"] for f in fleet.api("/api/stats", since="1h")["functions"]
    }:
        assert time.monotonic() < deadline, "stats never showed the new functions"
        time.sleep(0.5)

    page = _page(browser, fleet, "desk")
    pages.append(page)
    page.goto(f"{fleet.url}/#/?range=1h")
    notice = page.locator('.notice.state-disabled[data-function="legacy-sync"]')
    expect(notice).to_be_visible(timeout=WAIT_MS)
    text = notice.inner_text()
    assert f"arn:aws:iam::{ACCOUNT}:user/oncall" in text and "198.51.100.23" in text
    assert (now - timedelta(seconds=120)).strftime("%Y-%m-%d %H:%M:%S") in text and "UTC" in text

    table = _panel(page, "Functions").locator("table")
    expect(table.locator("tbody tr", has_text="legacy-sync")).to_have_class("state-disabled", timeout=WAIT_MS)
    disabled = table.locator("tbody tr", has_text="legacy-sync")
    assert disabled.locator(".badge").inner_text() == "disabled"
    slow = table.locator("tbody tr", has_text="slow-report")
    expect(slow).to_have_class("state-critical")
    headers = table.locator("thead th").all_inner_texts()
    assert slow.locator("td").nth(headers.index("timeout")).inner_text() == "3,000 ms"
    states = [
        re.sub("state-", "", c or "") for c in table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.className)")
    ]
    assert [STATE_ORDER.index(s) for s in states] == sorted(STATE_ORDER.index(s) for s in states), "worst first"
    page.screenshot(path=str(ARTIFACTS / "fleet-disabled.png"), full_page=True)


def _post(fleet: Fleet, path: str, body: object, **params: str) -> None:  # noqa: F811
    r = httpx.post(
        f"{fleet.url}{path}",
        params={**params, "wait": "stored"},
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {A}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
