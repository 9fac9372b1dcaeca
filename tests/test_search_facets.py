"""Search facets through a real `fnscope up` (tokens on, two tenants): the commonest functions, levels and structured
field values among the lines a query matches, counted against the lines that were sent, and each value's filter
finding exactly the lines it counted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnscope.query.search_language import Field, equals_filter, parse
from tests.conftest import Process, start_fnscope_up

A, B = "facets-acme", "facets-globex"
FUNCTIONS = ("checkout", "checkout", "refunds", "inventory", "checkout")
LEVELS = ("INFO", "INFO", "WARN", "ERROR")
PLANS = ("free", "pro plus", "team")
MARKUP = '<img src=x onerror="window.__injected = 1"><b>bold</b>'


@dataclass(frozen=True)
class Line:
    at: datetime
    function: str
    record: str | dict[str, Any]  # a JSON record is a structured line: level, message and fields

    @property
    def level(self) -> str:
        return self.record["level"] if isinstance(self.record, dict) else ""

    def fields(self) -> dict[str, str]:
        """The structured fields the facets count (a plain line has none)."""
        flat: dict[str, str] = {}
        if isinstance(self.record, dict):
            flat["user.id"] = str(self.record["user"]["id"])
            flat["plan"] = self.record["plan"]
            if "note" in self.record:
                flat["note"] = self.record["note"]
        return flat


def lines(now: datetime) -> list[Line]:
    """72 lines over the 40 minutes before ``now``: functions, levels and field values in overlapping cycles, every
    seventh line plain text, two with markup and quotes in a field."""
    out = []
    for i in range(72):
        at = (now - timedelta(seconds=60 + i * 33.3)).replace(microsecond=(i * 7919 % 1000) * 1000)
        function = FUNCTIONS[i % len(FUNCTIONS)]
        if i % 7 == 0:
            out.append(Line(at, function, f"plain line {i} of the batch job"))
            continue
        record: dict[str, Any] = {
            "level": LEVELS[i % len(LEVELS)],
            "message": f"order {i} handled",
            "user": {"id": i % 5},
            "plan": PLANS[i % len(PLANS)],
        }
        if i in (8, 9):
            record["note"] = f'{MARKUP} "quoted"'
        out.append(Line(at, function, record))
    return out


def send(url: str, token: str, sent: list[Line]) -> None:
    """Per function, one Telemetry API batch; answered once stored."""
    for function in sorted({line.function for line in sent}):
        body = [
            {"time": line.at.isoformat(timespec="milliseconds"), "type": "function", "record": line.record}
            for line in sent
            if line.function == function
        ]
        r = httpx.post(
            f"{url}/ingest/telemetry",
            params={"function": function, "wait": "stored"},
            content=json.dumps(body),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["accepted"] == len(body) and r.json()["stored"], r.text


@dataclass
class Store:
    url: str
    sent: list[Line]

    def get(self, path: str, token: str = A, **params: Any) -> httpx.Response:
        params.setdefault("since", "1h")
        return httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def facets(self, **params: Any) -> dict[str, Any]:
        r = self.get("/api/search/facets", **params)
        assert r.status_code == 200, r.text
        return r.json()


def start_store(tmp: Path) -> tuple[Store, Process]:
    """`fnscope up` with two tenants: acme holds ``lines``, globex a few lines of its own that acme must not count."""
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log", {"FNSCOPE_TOKENS": f"{A}:acme,{B}:globex"})
    sent = lines(datetime.now(UTC))
    send(url, A, sent)
    other = [Line(line.at, "globex-only", line.record) for line in sent[:10]]
    send(url, B, other)
    return Store(url, sent), proc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store, proc = start_store(tmp_path_factory.mktemp("facets"))
    yield store
    proc.stop()


def _counts(facet: list[dict[str, Any]]) -> dict[str, int]:
    return {v["value"]: v["count"] for v in facet}


def test_facets_count_what_was_sent(store: Store) -> None:
    found = store.facets()
    assert found["total"] == len(store.sent)
    assert _counts(found["functions"]) == Counter(line.function for line in store.sent)
    assert _counts(found["levels"]) == Counter(line.level for line in store.sent)
    expected: dict[str, Counter[str]] = {}
    for line in store.sent:
        for key, value in line.fields().items():
            expected.setdefault(key, Counter())[value] += 1
    fields = {f["key"]: f for f in found["fields"]}
    assert set(fields) == set(expected), "level and message are the other facets and the line, not fields"
    for key, values in expected.items():
        assert fields[key]["lines"] == values.total()
        assert _counts(fields[key]["values"]) == values
    # keys by the lines that carry them, each key's values commonest first
    assert [f["lines"] for f in found["fields"]] == sorted((f["lines"] for f in found["fields"]), reverse=True)
    for field in found["fields"]:
        counts = [v["count"] for v in field["values"]]
        assert counts == sorted(counts, reverse=True)


def test_facets_are_of_the_lines_the_query_matches(store: Store) -> None:
    errors = [line for line in store.sent if line.level == "ERROR" and line.function == "checkout"]
    found = store.facets(q="level:error", function="checkout")
    assert found["total"] == len(errors)
    assert _counts(found["levels"]) == {"ERROR": len(errors)}
    assert _counts(found["functions"]) == {"checkout": len(errors)}
    plans = {f["key"]: f for f in found["fields"]}["plan"]
    assert _counts(plans["values"]) == Counter(line.fields()["plan"] for line in errors)

    words = store.facets(q='"batch job"')  # the plain lines: no level, no structured fields
    plain = [line for line in store.sent if isinstance(line.record, str)]
    assert words["total"] == len(plain)
    assert _counts(words["levels"]) == {"": len(plain)}
    assert words["fields"] == []

    oldest = min(line.at for line in store.sent)
    until = oldest + timedelta(minutes=10)
    early = [line for line in store.sent if line.at <= until]
    span = store.facets(since=oldest.isoformat(), until=until.isoformat())
    assert span["total"] == len(early) < len(store.sent)
    assert _counts(span["functions"]) == Counter(line.function for line in early)


def test_each_values_filter_finds_the_lines_it_counted(store: Store) -> None:
    found = store.facets(top=50, keys=50)
    values = [*found["functions"], *found["levels"], *(v for f in found["fields"] for v in f["values"])]
    note = next(v for v in values if v["value"] == f'{MARKUP} "quoted"')
    assert note["count"] == 2 and note["filter"] == 'note:"' + MARKUP.replace('"', '\\"') + ' \\"quoted\\""'
    for value in values:
        if value["filter"] is None:
            assert value["value"] == ""  # lines without a level: no filter names them
            continue
        r = store.get("/api/search/histogram", q=value["filter"])
        assert r.status_code == 200, (value, r.text)
        assert r.json()["total"] == value["count"], value
    plan = next(v for v in values if v["value"] == "pro plus")
    assert plan["filter"] == 'plan:"pro plus"'


def test_facets_are_the_callers_tenants(store: Store) -> None:
    other = store.facets(token=B)
    assert _counts(other["functions"]) == {"globex-only": 10}
    assert "globex-only" not in _counts(store.facets()["functions"])
    assert store.get("/api/search/facets", token="nope").status_code == 401


def test_facets_are_cut_to_the_top_values(store: Store) -> None:
    found = store.facets(top=1, keys=2)
    assert _counts(found["functions"]) == {"checkout": Counter(line.function for line in store.sent)["checkout"]}
    # every structured line carries plan and user.id (a tie: by name), two carry a note
    assert [f["key"] for f in found["fields"]] == ["plan", "user.id"]
    assert all(len(f["values"]) == 1 for f in found["fields"])
    assert len(found["levels"]) == len({line.level for line in store.sent})  # levels are few: all of them


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"q": "(oops"}, 400, "unclosed ("),
        ({"q": "/x+/", "since": "60d"}, 400, "at most 7 days"),
        ({"since": "1h", "until": "2h"}, 400, "since must be before until"),
        ({"since": "yesterday"}, 400, "since"),
        ({"top": 0}, 422, "top"),
        ({"keys": 51}, 422, "keys"),
    ],
)
def test_bad_requests_say_what_is_wrong(store: Store, params: dict[str, Any], status: int, says: str) -> None:
    r = store.get("/api/search/facets", **params)
    assert r.status_code == status and says in json.dumps(r.json()), r.text


@given(st.from_regex(r"[A-Za-z_@$][\w.@$\-]{0,12}", fullmatch=True), st.text(max_size=30))
def test_a_filter_reads_back_as_its_field_and_value(name: str, value: str) -> None:
    written = equals_filter(name, value)
    if "\x00" in value or not value:  # key:"" also matches lines without the key: not that value's filter
        assert written is None
    else:
        assert parse(written) == Field(name, "=", value)


def test_no_filter_for_a_name_the_language_cant_write() -> None:
    assert equals_filter("two words", "x") is None
    assert equals_filter("9lives", "x") is None
    assert equals_filter("note", "x" * 3000) is None  # no query may be that long
