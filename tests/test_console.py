"""The web console in a real headless Chromium (Debian's, driven by Playwright) against a real `fnscope up`
with tokens, fed a simulated fleet (throttles, errors, CloudTrail changes) in the real wire formats.

What each page shows is compared with what the JSON API answers for the same thing and with the simulator's
own record. Any console error, uncaught exception or failed request in the page fails the test (a test names
exactly what it expects, e.g. the 400 of a bad query). Screenshots go to test-artifacts/console/.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ElementHandle, Locator, Page, expect, sync_playwright

from fnscope.simulator.scheduler import FunctionSpec, Simulation, simulate
from fnscope.simulator.sender import Sender
from fnscope.simulator.wire import render
from tests.conftest import ROOT, Process, all_stored, start_fnscope_up

A, B, C = "console-token-acme", "console-token-globex", "console-token-initech"
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000  # how long the page may take to show something (a bound, never an assertion)


@dataclass
class Fleet:
    url: str
    sim: Simulation
    ran: Counter[str]  # invocations that ran (not throttled), per function
    throttled_function: str
    cloudtrail: Counter[str]  # CloudTrail event names sent

    def api(self, path: str, token: str = A, **params: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def log_line(self, function: str, text: str) -> None:
        """One function log line, stamped now, sent as a Lambda Telemetry API batch."""
        body = json.dumps([{"time": datetime.now(UTC).isoformat(), "type": "function", "record": text}])
        r = httpx.post(
            f"{self.url}/ingest/telemetry",
            params={"function": function, "wait": "stored"},  # the page searches once, as it opens
            content=body,
            headers={"Authorization": f"Bearer {A}"},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["stored"], r.text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("console")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log", {"FNSCOPE_TOKENS": f"{A}:acme,{B}:globex,{C}:initech"})
    # half a minute of traffic that just ended: inside every range the console offers, sent by a few threads at once
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=35)
    sim = simulate(functions=5, rate=8.0, duration_s=30.0, seed=4, start=start)
    requests = list(render(sim))
    with Sender(url, A) as sender, ThreadPoolExecutor(8) as pool:
        assert all(r.status_code < 300 for r in pool.map(sender.send, requests))
    cloudtrail = Counter(
        record["eventName"]
        for req in requests
        if req.kind == "cloudtrail"
        for record in json.loads(req.body)["Records"]
    )
    ran = Counter(i.function for i in sim.invocations if i.status != "throttled")
    throttled = Counter(i.function for i in sim.invocations if i.status == "throttled")
    assert throttled and any(i.status == "error" for i in sim.invocations), "the fleet must throttle and fail"
    out = Fleet(url, sim, ran, throttled.most_common(1)[0][0], cloudtrail)
    deadline = time.monotonic() + 60  # health aggregates are rebuilt in the background, a moment after the 2xx
    while sum(r["invocations"] for r in out.api("/api/stats", since="1h")["functions"]) != ran.total():
        assert time.monotonic() < deadline, "the health tables never caught up with what was sent"
        time.sleep(0.5)
    yield out
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Console:
    page: Page
    url: str
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # patterns of problems a test provokes on purpose

    def open(self, hash_: str) -> Page:
        self.page.goto(f"{self.url}/{hash_}")
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(re.search(e, p) for e in self.expected)]


def _watch(browser: Browser, url: str, token: str | None) -> Console:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    if token is not None:
        context.add_init_script(f"localStorage.setItem('fnscope.token', {json.dumps(token)})")
    page = context.new_page()
    console = Console(page, url)
    page.on("console", lambda m: console.problems.append(f"console {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.problems.append(f"pageerror {e}"))
    page.on("requestfailed", lambda r: console.problems.append(f"requestfailed {r.url} {r.failure}"))
    return console


@contextmanager
def watching(browser: Browser, url: str, token: str) -> Iterator[Console]:
    watched = _watch(browser, url, token)
    yield watched
    watched.page.context.close()
    assert not watched.unexpected(), watched.unexpected()


@pytest.fixture
def console(browser: Browser, fleet: Fleet) -> Iterator[Console]:
    with watching(browser, fleet.url, A) as watched:
        yield watched


# --- helpers ---------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """A number as the console shows it (Intl en, at most 3 decimals)."""
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return text


def _panel(page: Page, title: str) -> Locator:
    return page.locator(f'section.panel[data-panel="{title}"]')


def _series_pixels(chart: Locator | ElementHandle) -> int:
    """Pixels on the chart's canvas in the colours of its series (as its legend shows them): lines were drawn,
    not just the axes and grid."""
    return chart.evaluate(
        """(box) => {
            const markers = [...box.querySelectorAll(".u-legend .u-series .u-marker")].slice(1);
            const colours = markers.map((m) => getComputedStyle(m).borderColor.match(/\\d+/g).slice(0, 3).map(Number));
            const canvas = box.querySelector("canvas");
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4)
                if (colours.some(([r, g, b]) => Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8
                                               && Math.abs(data[i + 2] - b) < 8)) n++;
            return n;
        }"""
    )


def _drawn(chart: Locator | ElementHandle) -> bool:
    """The chart's series are on its canvas: uPlot paints on the next animation frame, after its legend is up."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while _series_pixels(chart) == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _check_charts(page: Page, fleet: Fleet, uid: str, **params: str) -> int:
    """Every time-series panel on the page: drawn on a canvas, one legend entry per series the API returns."""
    board = next(d for d in fleet.api("/api/dashboards")["dashboards"] if d["uid"] == uid)
    checked = 0
    for item in board["items"]:
        if item.get("kind") != "timeseries":
            continue
        answer = fleet.api(f"/api/dashboards/{uid}/panels/{item['index']}", since="1h", **params)
        body = _panel(page, item["title"]).locator(".panel-body")
        if not answer["rows"]:
            expect(body).to_have_text("No data in this range", timeout=WAIT_MS)
            continue
        expect(body.locator("canvas")).to_be_visible(timeout=WAIT_MS)
        if item["series_by"]:  # long rows: a line per label (the ten highest at most)
            lines = min(len({row[1] for row in answer["rows"]}), 10)
        else:
            lines = len(answer["columns"]) - 1
        assert body.locator(".u-legend .u-series").count() - 1 == lines, item["title"]
        assert _drawn(body), item["title"]
        checked += 1
    return checked


# --- pages -----------------------------------------------------------------------------------------------


def test_fleet_page_shows_what_the_api_and_the_simulation_say(console: Console, fleet: Fleet) -> None:
    page = console.open("#/?range=1h")
    expect(page.locator("nav a.active")).to_have_text("Fleet")
    stats = {
        title: fleet.api(f"/api/dashboards/fnscope-fleet/panels/{i}", since="1h")["rows"][0][0]
        for i, title in enumerate(("Invocations", "Errors", "Throttles"))
    }
    assert stats["Invocations"] == fleet.ran.total()
    assert stats["Throttles"] > 0 and stats["Errors"] > 0
    for title, value in stats.items():
        expect(_panel(page, title).locator(".stat")).to_have_text(_number(value), timeout=WAIT_MS)

    assert _check_charts(page, fleet, "fnscope-fleet") >= 7  # fleet-wide and per-function charts
    table = _panel(page, "Functions").locator("table")
    expect(table).to_be_visible(timeout=WAIT_MS)
    answer = fleet.api("/api/dashboards/fnscope-fleet/panels/8", since="1h")
    assert {r[0]: r[1] for r in answer["rows"] if r[1]} == dict(fleet.ran)
    cells = [[td.inner_text() for td in tr.locator("td").all()[:2]] for tr in table.locator("tbody tr").all()]
    assert cells == [[r[0], _number(r[1])] for r in answer["rows"]]
    link = table.locator("a.fn", has_text=fleet.throttled_function)
    assert link.get_attribute("href") == f"#/function/{fleet.throttled_function}?range=1h"
    console.shot("fleet")


def test_function_page_from_a_fleet_link(console: Console, fleet: Fleet) -> None:
    page = console.open("#/?range=1h")
    name = fleet.throttled_function
    _panel(page, "Functions").locator("a.fn", has_text=name).click()
    expect(page.locator("h1")).to_have_text(name, timeout=WAIT_MS)
    assert page.url.endswith(f"#/function/{name}?range=1h")

    params = {"var-function": name}
    versions = fleet.api("/api/dashboards/fnscope-function/variables/version", since="1h", **params)["values"]
    expect(page.locator('select[name="version"] option')).to_have_text(["All", *versions], timeout=WAIT_MS)
    table = _panel(page, "Versions").locator("table")
    expect(table).to_be_visible(timeout=WAIT_MS)
    board = next(d for d in fleet.api("/api/dashboards")["dashboards"] if d["uid"] == "fnscope-function")
    at = next(item["index"] for item in board["items"] if item.get("title") == "Versions")
    answer = fleet.api(f"/api/dashboards/fnscope-function/panels/{at}", since="1h", **params)
    cells = [[td.inner_text() for td in tr.locator("td").all()] for tr in table.locator("tbody tr").all()]
    assert [(c[0], c[1]) for c in cells] == [(r[0], _number(r[1])) for r in answer["rows"]]
    assert sum(r[1] for r in answer["rows"]) == fleet.ran[name]
    assert _check_charts(page, fleet, "fnscope-function", **params) >= 4
    expect(_panel(page, "Recent logs").locator("li").first).to_be_visible(timeout=WAIT_MS)
    console.shot("function")


def _searched(page: Page, submit: Any) -> dict[str, Any]:
    """Run ``submit`` and return the /api/search answer the page got for it (what it must show, exactly: a line
    re-delivered and not yet merged away is dropped from a page, so a second request could differ)."""
    with page.expect_response(lambda r: "/api/search?" in r.url and r.status == 200) as response:
        submit()
    return response.value.json()


def test_a_series_with_one_value_in_range_is_drawn(console: Console) -> None:
    """One cold start in the hour: the chart's only value sits among missing buckets, which no line joins."""
    page = console.open("#/?range=1h")
    expect(page.locator("nav a.active")).to_have_text("Fleet", timeout=WAIT_MS)
    box = page.evaluate_handle(
        "() => { const box = document.createElement('div'); box.style.width = '600px'; document.body.append(box); return box; }"
    )
    page.evaluate(
        """async (box) => {
            const { timeSeries } = await import("/console/charts.js");
            const rows = [["2026-12-07T10:00:00Z", null], ["2026-12-07T10:01:00Z", 412], ["2026-12-07T10:02:00Z", null]];
            timeSeries(box, ["t", "init_ms"], rows, { unit: "ms", since: "2026-12-07T09:30:00Z", until: "2026-12-07T10:30:00Z" });
        }""",
        box,
    )
    assert _drawn(box.as_element())


def test_search_highlights_pages_and_opens_a_lines_context(console: Console, fleet: Fleet) -> None:
    page = console.open("#/search?range=1h")
    status = page.locator(".status")
    # the page's own first search (every line) is answered first, so it cannot be taken for the one below
    expect(status).to_contain_text("matching lines", timeout=WAIT_MS)
    query = page.get_by_label("Search query")
    query.fill("captured")
    answer = _searched(page, lambda: query.press("Enter"))
    assert answer["results"], "the simulated payments function logs 'Payment captured'"
    assert answer["histogram"]["total"] >= len(answer["results"])
    expect(status).to_have_text(f"{answer['histogram']['total']} matching lines in the last 1h", timeout=WAIT_MS)
    lines = page.locator(".results li.line")
    expect(lines).to_have_count(len(answer["results"]))
    for line in lines.all()[:20]:
        assert "captured" in line.locator(".message").inner_text().lower()
        assert [m.lower() for m in line.locator("mark").all_inner_texts()] == ["captured"]
    expect(page.locator(".histogram canvas")).to_be_visible()

    # the first line's context: its invocation, as /api/search/context tells it
    first = answer["results"][0]
    context = fleet.api("/api/search/context", ref=first["ref"])
    assert context["invocation"] and context["invocation"]["duration_ms"] is not None
    line = page.locator(f'.results li[data-ref="{first["ref"]}"]')
    line.locator(".context-link").click()
    duration = f"{_number(context['invocation']['duration_ms'])} ms"
    expect(line.locator('[data-fact="duration"]')).to_have_text(duration, timeout=WAIT_MS)
    expect(line.locator("h4").first).to_contain_text(context["invocation"]["request_id"])
    if context["changes"]:
        expect(line.locator(".changes tbody tr")).to_have_count(len(context["changes"]))
        shown = line.locator(".changes tbody tr").all_inner_texts()
        assert all(change["summary"] in row for change, row in zip(context["changes"], shown, strict=True))
    expect(line.locator(".links a.fn")).to_have_attribute("href", f"#/function/{first['function']}?range=1h")
    console.shot("search")

    # every line: a page, then "Older" appends the next page from the cursor
    query.fill("")
    first_page = _searched(page, lambda: query.press("Enter"))
    assert first_page["next_cursor"] and len(first_page["results"]) > 50
    expect(lines).to_have_count(len(first_page["results"]), timeout=WAIT_MS)
    with page.expect_request(lambda r: f"cursor={first_page['next_cursor']}" in r.url):
        second_page = _searched(page, lambda: page.get_by_role("button", name="Older").click())
    both = [r["ref"] for r in first_page["results"] + second_page["results"]]
    expect(lines).to_have_count(len(both), timeout=WAIT_MS)
    assert lines.evaluate_all("(items) => items.map((li) => li.dataset.ref)") == both
    assert len(set(both)) == len(both)


def test_search_shows_the_apis_reason_for_a_bad_query(console: Console, fleet: Fleet) -> None:
    console.expected.append(r"status of 400")  # the browser logs the failed fetch; the page must show why
    page = console.open("#/search?range=1h&q=%22unclosed")
    r = httpx.get(f"{fleet.url}/api/search", params={"q": '"unclosed'}, headers={"Authorization": f"Bearer {A}"})
    assert r.status_code == 400
    expect(page.locator(".status .error")).to_have_text(r.json()["detail"], timeout=WAIT_MS)


def test_live_tail_shows_a_line_as_it_is_stored(console: Console, fleet: Fleet) -> None:
    console.expected.append(r"requestfailed .*/api/search/tail.*ERR_ABORTED")  # the toggle ends the stream
    word = f"zebracorn{int(time.time())}"
    page = console.open(f"#/search?range=1h&q={word}")
    expect(page.locator(".results + .more .empty")).to_have_text("Nothing matches in this range.", timeout=WAIT_MS)
    with page.expect_request(re.compile(r"/api/search/tail")):
        page.get_by_label("Live tail").check()
    fleet.log_line("tail-demo", f"stock {word} arrived")
    live = page.locator(".results li.live")
    expect(live).to_have_count(1, timeout=WAIT_MS)
    expect(live.locator("mark")).to_have_text(word)
    expect(live.locator("a.fn")).to_have_text("tail-demo")
    page.get_by_label("Live tail").uncheck()


def test_a_log_line_is_shown_as_text_never_as_html(console: Console, fleet: Fleet) -> None:
    """Log lines are anyone's words: markup in one must be shown, not run."""
    word = f"markup{int(time.time())}"
    record = f'{word} <img src=x onerror="window.__injected = 1"><b>bold</b>'
    fleet.log_line("<script>fn</script>", record)
    page = console.open(f"#/search?range=1h&q={word}")
    line = page.locator(".results li.line")
    expect(line).to_have_count(1, timeout=WAIT_MS)
    expect(line.locator(".message")).to_have_text(record)
    expect(line.locator("a.fn")).to_have_text("<script>fn</script>")
    assert line.locator("img, b, script").count() == 0
    assert page.evaluate("window.__injected") is None


def test_audit_filters_saved_query_and_integrity(console: Console, fleet: Fleet) -> None:
    page = console.open("#/audit")
    verify = fleet.api("/api/audit/verify")
    assert verify["ok"]
    integrity = page.locator(".integrity")
    expect(integrity).to_have_attribute("data-ok", "true", timeout=WAIT_MS)
    expect(integrity.locator("strong")).to_have_text("Verified")

    expected = fleet.api("/api/audit/queries/lambda-concurrency-changes", since="90d")["results"]
    assert len(expected) == fleet.cloudtrail["PutFunctionConcurrency20171031"] > 0
    page.locator('li[data-query="lambda-concurrency-changes"] button.run').click()
    expect(page.locator(".card h2").filter(has_text="Saved query")).to_contain_text(
        f"Lambda concurrency changes ({len(expected)} rows", timeout=WAIT_MS
    )
    rows = page.locator(".audit-events tbody tr")
    expect(rows).to_have_count(len(expected))
    shown = [tr.locator("td").nth(3).inner_text() for tr in rows.all()]
    assert shown == [r["action"] for r in expected]
    expect(integrity).to_have_attribute("data-ok", "true", timeout=WAIT_MS)
    console.shot("audit-saved-query")

    page.goto(f"{fleet.url}/#/audit")
    page.get_by_label("Action").fill("UpdateFunctionCode")
    page.get_by_role("button", name="Apply").click()
    filtered = fleet.api("/api/audit", action="UpdateFunctionCode", since="90d")["results"]
    assert filtered
    expect(page.locator(".audit-events tbody tr")).to_have_count(len(filtered), timeout=WAIT_MS)
    assert page.url.endswith("action=UpdateFunctionCode")
    console.shot("audit")


def test_alerts_page_lists_rules_alerts_and_history(browser: Browser, fleet: Fleet) -> None:
    # Alert windows are wall-clock: a throttling burst now, in a tenant of its own (the fleet's figures stay put)
    spec = FunctionSpec(
        "checkout-burst", reserved_concurrency=2, burst_mean=5.0, median_ms=300.0, timeout_s=30.0,
        error_rate=0.0, timeout_rate=0.0, oom_rate=0.0, weight=1.0,
    )  # fmt: skip
    sim = simulate(rate=40, duration_s=2, seed=7, specs=[spec])
    assert any(i.status == "throttled" for i in sim.invocations)
    with Sender(fleet.url, C) as sender:
        assert all(sender.send(req).is_success for req in render(sim))
    every_state = {"state": ["pending", "firing", "resolved"]}
    deadline = time.monotonic() + 30
    while not any(
        a["rule"] == "function-throttled" for a in fleet.api("/api/alerts", token=C, **every_state)["alerts"]
    ):
        assert time.monotonic() < deadline, "the throttling burst never raised function-throttled"
        time.sleep(0.2)
    answer = fleet.api("/api/alerts", token=C, **every_state)

    with watching(browser, fleet.url, C) as console:
        page = console.open("#/alerts?state=pending,firing,resolved")
        rules = page.locator(".rules tbody tr td:first-child")
        expect(rules).to_have_text([r["name"] for r in answer["rules"]], timeout=WAIT_MS)
        throttled = page.locator(".alerts tbody tr").filter(has_text="function-throttled")
        expect(throttled).to_have_count(1)
        expect(throttled.locator("a.fn")).to_have_text("checkout-burst")
        expect(throttled.locator(".badge")).to_have_text(re.compile("firing|resolved"))
        history = page.locator(".history tbody tr").filter(has_text="function-throttled").filter(has_text="firing")
        expect(history.first).to_be_visible()
        console.shot("alerts")


def test_a_token_form_when_the_api_wants_one(browser: Browser, fleet: Fleet) -> None:
    watched = _watch(browser, fleet.url, None)
    page = watched.open("#/?range=1h")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible(timeout=WAIT_MS)
    watched.shot("token")
    page.locator("#token-input").fill(A)
    page.get_by_role("button", name="Use token").click()
    expect(_panel(page, "Invocations").locator(".stat")).to_have_text(_number(fleet.ran.total()), timeout=WAIT_MS)
    assert page.evaluate("localStorage.getItem('fnscope.token')") == A
    page.context.close()
    assert all("status of 401" in p for p in watched.problems), watched.problems  # only the first, token-less fetch


# --- the panel API (no browser) --------------------------------------------------------------------------


def test_every_panel_runs_for_the_callers_tenant(fleet: Fleet) -> None:
    from fnscope.dashboards.panels import DASHBOARDS, PIPELINE

    listed = {d["uid"]: d for d in fleet.api("/api/dashboards")["dashboards"]}
    # pipeline health reads every tenant's rows: with tokens it is neither listed nor served
    assert set(listed) == {d.uid for d in DASHBOARDS} - {PIPELINE.uid}
    r = httpx.get(f"{fleet.url}/api/dashboards/{PIPELINE.uid}/panels/0", headers={"Authorization": f"Bearer {A}"})
    assert r.status_code == 403
    for dashboard in DASHBOARDS:
        if dashboard.uid not in listed:
            continue
        layout = [item for item in listed[dashboard.uid]["items"] if item["type"] == "panel"]
        assert [item["title"] for item in layout] == [panel.title for panel in dashboard.panels]
        for index, panel in enumerate(dashboard.panels):
            answer = (
                fleet.api(
                    f"/api/dashboards/{dashboard.uid}/panels/{index}",
                    since="1h",
                    **{"var-function": fleet.throttled_function},
                )
                if dashboard.uid == "fnscope-function"
                else fleet.api(f"/api/dashboards/{dashboard.uid}/panels/{index}", since="1h")
            )
            assert set(panel.columns) <= set(answer["columns"]), panel.title
            assert 200 <= 3600 / answer["interval_s"] <= 600


def test_the_tenant_is_the_tokens_never_the_query_strings(fleet: Fleet) -> None:
    invocations = "/api/dashboards/fnscope-fleet/panels/0"
    assert fleet.api(invocations, since="1h")["rows"] == [[fleet.ran.total()]]
    assert fleet.api(invocations, token=A, since="1h", **{"var-tenant": "globex"})["rows"] == [[fleet.ran.total()]]
    assert fleet.api(invocations, token=B, since="1h", **{"var-tenant": "acme"})["rows"] == [[0]]
    functions = "/api/dashboards/fnscope-function/variables/function"
    assert fleet.api(functions, since="1h")["values"] == sorted(fleet.ran)
    assert fleet.api(functions, token=B, since="1h", **{"var-tenant": "acme"})["values"] == []
    assert fleet.api("/api/dashboards/fnscope-fleet/variables/tenant", token=B)["values"] == ["globex"]
    r = httpx.get(f"{fleet.url}{invocations}", params={"since": "1h"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/api/dashboards/nope/panels/0", {}, 404, "no dashboard"),
        ("/api/dashboards/fnscope-fleet/panels/99", {}, 404, "panels 0..12"),
        ("/api/dashboards/fnscope-fleet/panels/0", {"var-colour": "red"}, 400, "no variable 'colour'"),
        ("/api/dashboards/fnscope-fleet/panels/0", {"since": "yesterday"}, 400, "since: not a time"),
        ("/api/dashboards/fnscope-fleet/panels/0", {"since": "1h", "until": "2h"}, 400, "since must be before until"),
        ("/api/dashboards/fnscope-function/panels/0", {}, 400, "var-function"),
        ("/api/dashboards/fnscope-function/variables/nope", {}, 404, "no variable"),
    ],
)
def test_panel_api_errors_say_what_is_wrong(
    fleet: Fleet, path: str, params: dict[str, str], status: int, says: str
) -> None:
    r = httpx.get(f"{fleet.url}{path}", params=params, headers={"Authorization": f"Bearer {A}"}, timeout=30)
    assert r.status_code == status and says in r.json()["detail"], r.text


def test_without_tokens_every_dashboard_is_served(embedded: tuple[str, Process]) -> None:
    """Pipeline health (every tenant's rows) too: an open instance is one operator's; its panels run."""
    from fnscope.dashboards.panels import DASHBOARDS, PIPELINE

    url, _ = embedded
    sim = simulate(functions=2, rate=5.0, duration_s=5.0, seed=5, start=datetime.now(UTC) - timedelta(minutes=2))
    with Sender(url) as sender:
        for req in render(sim):
            assert sender.send(req).status_code < 300
    all_stored(url)
    listed = httpx.get(f"{url}/api/dashboards", timeout=30).json()["dashboards"]
    assert [d["uid"] for d in listed] == [d.uid for d in DASHBOARDS]
    answers = []
    for index, panel in enumerate(PIPELINE.panels):
        r = httpx.get(f"{url}/api/dashboards/{PIPELINE.uid}/panels/{index}", params={"since": "15m"}, timeout=30)
        assert r.status_code == 200, (panel.title, r.text)
        answers.append(r.json())
    stored = answers[0]  # stored events per second, by signal
    assert sum(row[stored["columns"].index("invocations")] or 0 for row in stored["rows"]) > 0
