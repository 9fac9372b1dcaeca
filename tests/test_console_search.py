"""The console's search page in Debian's Chromium against a real `fnscope up` holding a known set of lines (those of
test_search_facets): the facets panel shows the API's counts and a click narrows the search, a drag across the
histogram narrows its range (in the URL, undone by zoom out or Back), and a structured line's fields show with it,
as text. Screenshots go to test-artifacts/console/."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.test_console import ARTIFACTS, WAIT_MS, Console, browser, watching  # noqa: F401 (fixtures)
from tests.test_search_facets import MARKUP, A, Store, start_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store, proc = start_store(tmp_path_factory.mktemp("console-search"))
    yield store
    proc.stop()


@pytest.fixture
def console(browser: Browser, store: Store) -> Iterator[Console]:  # noqa: F811
    with watching(browser, store.url, A) as watched:
        yield watched


def _hash_params(page: Page) -> dict[str, str]:
    fragment = urlsplit(page.url).fragment
    return {k: v[0] for k, v in parse_qs(fragment.partition("?")[2]).items()}


def _facet(page: Page, name: str) -> Locator:
    return page.locator(f'.facets section.facet[data-facet="{name}"]')


def _time_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_a_facet_click_narrows_the_search(console: Console, store: Store) -> None:
    page = console.open("#/search?range=1h")
    functions = Counter(line.function for line in store.sent)
    buttons = _facet(page, "function").locator("button.facet-value")
    expect(buttons).to_have_count(len(functions), timeout=WAIT_MS)
    shown = {b.locator(".facet-label").inner_text(): b.locator(".facet-count").inner_text() for b in buttons.all()}
    assert shown == {name: str(n) for name, n in functions.items()}

    with page.expect_response(lambda r: "/api/search?" in r.url and r.status == 200) as response:
        buttons.filter(has_text="refunds").click()
    assert _hash_params(page)["q"] == "function:refunds"
    answer = response.value.json()
    assert answer["histogram"]["total"] == functions["refunds"]
    expect(page.locator(".status")).to_have_text(f"{functions['refunds']} matching lines in the last 1h")
    lines = page.locator(".results li.line")
    expect(lines).to_have_count(functions["refunds"])
    assert set(lines.locator("a.fn").all_inner_texts()) == {"refunds"}
    pressed = _facet(page, "function").locator('button[aria-pressed="true"]')
    expect(pressed).to_have_attribute("data-value", "refunds", timeout=WAIT_MS)

    # a field value next: ANDed to the query, with the quotes its space needs
    plan = [line for line in store.sent if line.function == "refunds" and line.fields().get("plan") == "pro plus"]
    _facet(page, "plan").locator('button[data-value="pro plus"]').click()
    assert _hash_params(page)["q"] == 'function:refunds plan:"pro plus"'
    expect(page.locator(".status")).to_have_text(f"{len(plan)} matching lines in the last 1h", timeout=WAIT_MS)
    expect(lines).to_have_count(len(plan))

    # clicked again, a value's filter goes
    _facet(page, "function").locator('button[data-value="refunds"]').click()
    assert _hash_params(page)["q"] == 'plan:"pro plus"'
    every_pro = sum(1 for line in store.sent if line.fields().get("plan") == "pro plus")
    expect(page.locator(".status")).to_have_text(f"{every_pro} matching lines in the last 1h", timeout=WAIT_MS)
    console.shot("search-facets")


# (query, a facet's filter, the query after a click on it)
TOGGLES = [
    ("", "level:error", "level:error"),
    ("timeout", "level:error", "timeout level:error"),
    ("timeout OR oom", "level:error", "(timeout OR oom) level:error"),  # ANDed to all of it, not to `oom`
    ("(timeout OR oom) level:error", "function:a", "(timeout OR oom) level:error function:a"),
    ('"a OR b" x', "function:a", '"a OR b" x function:a'),  # an OR inside a phrase is a word
    ("timeout level:error", "level:error", "timeout"),  # there already: taken out
    ("(timeout OR oom) level:error", "level:error", "(timeout OR oom)"),
    ("function:ab", "function:a", "function:ab function:a"),  # a longer term is another term
    ('plan:"pro plus" x', 'plan:"pro plus"', "x"),
    # a term taking part in an OR or a NOT isn't a filter of the whole query: a click ANDs the filter instead
    ("timeout OR level:error", "level:error", "(timeout OR level:error) level:error"),
    ("(level:error OR level:warn)", "level:error", "(level:error OR level:warn) level:error"),
    ("NOT level:error", "level:error", "NOT level:error level:error"),
    ("-level:error", "level:error", "-level:error level:error"),
]


def test_a_facet_filter_is_anded_to_the_query_or_taken_out(console: Console) -> None:
    page = console.open("#/search?range=1h")
    expect(page.locator(".status")).to_contain_text("matching lines", timeout=WAIT_MS)
    toggled = page.evaluate(
        """async (cases) => {
            const { toggledFilter } = await import("/console/search.js");
            return cases.map(([q, f]) => toggledFilter(q, f));
        }""",
        [[q, f] for q, f, _ in TOGGLES],
    )
    assert toggled == [becomes for _, _, becomes in TOGGLES]


def test_dragging_across_the_histogram_narrows_the_range(console: Console, store: Store) -> None:
    page = console.open("#/search?range=1h")
    status = page.locator(".status")
    expect(status).to_have_text(f"{len(store.sent)} matching lines in the last 1h", timeout=WAIT_MS)
    over = page.locator(".histogram .u-over")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    with page.expect_response(lambda r: "/api/search?" in r.url and r.status == 200) as response:
        page.mouse.move(box["x"] + box["width"] * 0.55, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
        page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=5)
        page.mouse.up()
    params = _hash_params(page)
    since, until = _time_ms(params["since"]), _time_ms(params["until"])
    asked = parse_qs(urlsplit(response.value.url).query)
    assert (asked["since"], asked["until"]) == ([params["since"]], [params["until"]])

    inside = [line for line in store.sent if since <= int(line.at.timestamp() * 1000) <= until]
    assert 0 < len(inside) < len(store.sent)
    expect(status).to_contain_text(f"{len(inside)} matching lines from ", timeout=WAIT_MS)
    lines = page.locator(".results li.line")
    expect(lines).to_have_count(len(inside))
    assert sorted(lines.evaluate_all("(items) => items.map((li) => Number(li.dataset.ms))")) == sorted(
        int(line.at.timestamp() * 1000) for line in inside
    )
    expect(page.get_by_label("Live tail")).to_be_disabled()  # the tail runs from now, outside the span
    expect(_facet(page, "function").locator(".facet-count")).to_have_text(
        [str(n) for _, n in sorted(Counter(line.function for line in inside).items(), key=lambda kv: (-kv[1], kv[0]))]
    )
    console.shot("search-zoomed")
    page.reload()
    expect(status).to_contain_text(f"{len(inside)} matching lines from ", timeout=WAIT_MS)
    assert _hash_params(page) == params

    # zoom out: the page's range again; zoom in again, then Back undoes it too
    status.get_by_role("button", name="zoom out").click()
    expect(status).to_have_text(f"{len(store.sent)} matching lines in the last 1h", timeout=WAIT_MS)
    assert "since" not in _hash_params(page)
    expect(page.locator(".histogram .u-over")).to_be_visible(timeout=WAIT_MS)
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    expect(status).to_contain_text("matching lines from ", timeout=WAIT_MS)
    page.go_back()
    expect(status).to_have_text(f"{len(store.sent)} matching lines in the last 1h", timeout=WAIT_MS)

    # a chosen range replaces the zoomed span
    page.go_forward()
    expect(status).to_contain_text("matching lines from ", timeout=WAIT_MS)
    page.locator("#range").select_option("6h")
    expect(status).to_have_text(f"{len(store.sent)} matching lines in the last 6h", timeout=WAIT_MS)
    assert "until" not in _hash_params(page)


def test_a_structured_lines_fields_show_with_it_as_text(console: Console, store: Store) -> None:
    marked = [line for line in store.sent if "note" in line.fields()]
    page = console.open("#/search?range=1h&q=note:*")
    lines = page.locator(".results li.line")
    expect(lines).to_have_count(len(marked), timeout=WAIT_MS)
    line = lines.first
    record = next(r for r in marked if r.record["message"] == line.locator(".message").inner_text()).record
    toggle = line.get_by_role("button", name="4 fields")  # level, user.id, plan, note (the message is the line)
    fields = line.locator("dl.fields")
    expect(fields).to_be_hidden()
    toggle.click()
    expect(fields).to_be_visible()
    shown = dict(zip(fields.locator("dt").all_inner_texts(), fields.locator("dd").all_inner_texts(), strict=True))
    assert shown == {
        "level": record["level"],
        "user.id": str(record["user"]["id"]),
        "plan": record["plan"],
        "note": f'{MARKUP} "quoted"',
    }
    assert line.locator("img, b, script").count() == 0
    assert page.evaluate("window.__injected") is None
    # the facets show the field's values as text as well
    expect(_facet(page, "note").locator(".facet-label")).to_have_text([f'{MARKUP} "quoted"'])
    assert page.locator(".facets img, .facets b").count() == 0
    toggle.click()
    expect(fields).to_be_hidden()


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_the_search_page_with_facets_fits_the_screen(browser: Browser, store: Store, width: int, height: int) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(f"localStorage.setItem('fnscope.token', '{A}')")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{store.url}/#/search?range=1h")
    expect(_facet(page, "plan").locator("button")).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator(".results li.line")).to_have_count(len(store.sent))
    page.wait_for_timeout(300)  # the histogram sizes itself to its box
    overflow = page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            cards: [...document.querySelectorAll('.card')].filter(c => c.getBoundingClientRect().right > window.innerWidth + 1).length,
        })"""
    )
    assert overflow == {"page": 0, "cards": 0}
    message = page.locator(".results .message").first
    assert message.bounding_box()["width"] > width / 2, "a message is not squeezed beside the facets"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"search-facets-{width}.png"), full_page=False)
    context.close()
    assert not errors, errors
