"""The search language: what users type, the tree it means, the SQL it compiles to, and clear errors."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import search_data
from fnscope.processors.schema import migrate
from fnscope.query.runner import QueryRunner
from fnscope.query.search import SearchRequest, page_query, search
from fnscope.query.search_language import (
    FIELD_PAIRS,
    PAIR_SEPARATOR,
    And,
    Field,
    Not,
    Or,
    QuerySyntaxError,
    Regex,
    Text,
    compile_query,
    parse,
)
from fnscope.query.search_results import decode_ref, encode_ref, highlighter, spans
from fnscope.store import connect


def test_words_phrases_and_implicit_and() -> None:
    assert parse('payment "card declined" failed') == And(
        (Text("payment"), Text("card declined", phrase=True), Text("failed"))
    )


def test_boolean_operators_and_precedence() -> None:
    # AND binds tighter than OR; NOT and a leading minus negate the next term; parentheses group
    assert parse("a OR b c") == Or((Text("a"), And((Text("b"), Text("c")))))
    assert parse("(a OR b) AND NOT c -d") == And((Or((Text("a"), Text("b"))), Not(Text("c")), Not(Text("d"))))
    # lower-case "or" is a word, as users searching prose expect
    assert parse("this or that") == And((Text("this"), Text("or"), Text("that")))


def test_field_filters() -> None:
    assert parse("function:checkout") == Field("function", "=", "checkout")
    assert parse("user.id:42") == Field("user.id", "=", "42")
    assert parse("amount_cents:>=500") == Field("amount_cents", ">=", "500")
    assert parse('user.name:"Ada Lovelace"') == Field("user.name", "=", "Ada Lovelace")
    assert parse("function:check*") == Field("function", "prefix", "check")
    assert parse("trace_id:*") == Field("trace_id", "exists", "")


def test_regex_and_paths() -> None:
    assert parse("/time(d|out)/i") == Regex("time(d|out)", ignore_case=True)
    assert parse(r"/a\/b\d+/") == Regex(r"a/b\d+")
    # a URL path is a word, not a regex
    assert parse("GET /orders/42") == And((Text("GET"), Text("/orders/42")))


def test_compiled_sql_binds_every_value() -> None:
    evil = "x'); DROP TABLE function_logs; --"
    c = compile_query(f"\"{evil}\" user.id:x';DROP--{{}} function:\\'")
    ours = c.sql.replace(FIELD_PAIRS, "").replace(PAIR_SEPARATOR, "")  # our constants: the field-pair spelling
    assert "DROP" not in ours and "'" not in ours and "\\" not in ours
    assert evil in c.params.values() and "x';DROP--{}" in c.params.values()
    assert all(re.fullmatch(r"q\d+", name) for name in c.params)


def test_words_use_the_lower_case_text_index() -> None:
    c = compile_query("TimeOut")
    assert c.sql == "hasToken(lower(message), {q0:String})"
    assert c.params == {"q0": "timeout"}
    # punctuation inside a word: the index narrows by its tokens, the substring check keeps the order
    c = compile_query("user-42")
    assert "hasAllTokens(lower(message)" in c.sql and "positionCaseInsensitive(message" in c.sql
    assert ["user", "42"] in c.params.values()


def test_level_names_and_comparisons() -> None:
    assert compile_query("level:warning").params == {"q0": "WARN"}
    assert compile_query("level:>=warn").params == {"q0": ["WARN", "ERROR", "FATAL"]}


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("(timeout", "unclosed ("),
        ("timeout)", "unmatched )"),
        ('"card declined', "unclosed phrase"),
        ("timeout OR", "ends where"),
        ("AND timeout", "AND needs a term"),
        ("level:loud", "not a level"),
        ("amount:>lots", "not a number"),
        ("function:>3", "function is not a number"),
        ("user.id:", "needs a value"),
        ("()", "empty parentheses"),
        ("(" * 40 + "x" + ")" * 40, "nest deeper"),
        ("x " * 1500, "longer than"),
    ],
)
def test_errors_say_what_is_wrong(query: str, says: str) -> None:
    with pytest.raises(QuerySyntaxError, match=re.escape(says)):
        compile_query(query)


_PIECES = st.sampled_from(
    ["a", "B", "AND", "OR", "NOT", "-", "(", ")", '"', "/", ":", ">", ">=", "*", "user.id", "level", "\\", " ", "é"]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=30).map("".join)))
def test_the_parser_never_crashes(query: str) -> None:
    """Any input either compiles to SQL whose values are all parameters, or raises a QuerySyntaxError."""
    try:
        c = compile_query(query)
    except QuerySyntaxError as exc:
        assert str(exc)
        return
    placeholders = set(re.findall(r"\{(q\d+):", c.sql))
    assert placeholders == set(c.params)
    assert c.sql.count("(") == c.sql.count(")")


def test_refs_round_trip_and_highlights() -> None:
    assert decode_ref(encode_ref(1795757027539, "abc")) == (1795757027539, "abc")
    pattern = highlighter([Text("timeout"), Text("card declined", phrase=True)])
    message = "Timeout: CARD DECLINED after timeouts; timeout"
    assert [message[a:b] for a, b in spans(pattern, message)] == ["Timeout", "CARD DECLINED", "timeout"]


def _index_granules(runner: QueryRunner, req: SearchRequest, index: str) -> tuple[int, int] | None:
    """(granules kept, granules before) by ``index`` in the search's plan, None if the plan doesn't use it."""
    statement, params = page_query(req)
    plan = [row["explain"] for row in runner.rows(f"EXPLAIN indexes = 1 {statement}", params)]
    for i, line in enumerate(plan):
        if f"Name: {index}" in line:
            kept, before = re.search(r"Granules: (\d+)/(\d+)", "\n".join(plan[i:])).groups()  # type: ignore[union-attr]
            return int(kept), int(before)
    return None


def test_v007_on_a_store_with_lines_finds_field_pairs_exactly(tmp_path: Path) -> None:
    end = datetime.now(UTC)
    client = connect(f"chdb://{tmp_path / 'store'}")
    try:
        migrate(client, until=7)
        client.insert_arrow(
            "function_logs", search_data.batch(np.random.default_rng(7), 0, 60_000, end, timedelta(hours=1))
        )
        odd = {"note": "a=b", "empty": "", "blob": "x" * 1_900}  # about the longest a query can hold
        client.insert(
            "function_logs",
            [
                ["default", "odd-1", end, "fn-odd", "odd fields", odd],
                ["other", "odd-2", end, "fn-odd", "other tenant", odd],
            ],
            ["tenant", "event_id", "time", "function", "message", "fields"],
        )
        runner = QueryRunner(client)
        stored = runner.rows("SELECT event_id, fields FROM function_logs WHERE tenant = 'default'", {})

        assert migrate(client) >= 7
        deadline = time.monotonic() + 60
        while client.command("SELECT count() FROM system.mutations WHERE NOT is_done") and time.monotonic() < deadline:
            time.sleep(0.2)

        def found(query: str) -> set[str]:
            page = search(runner, SearchRequest("default", query, since=end - timedelta(hours=2), limit=1000))
            return {row["event_id"] for row in page["results"]}

        def having(key: str, value: str) -> set[str]:
            return {row["event_id"] for row in stored if row["fields"].get(key) == value}

        users = [row["fields"]["user.id"] for row in stored if "user.id" in row["fields"]][:5]
        for user in users:
            assert found(f"user.id:{user}") == having("user.id", user) != set()
        assert found('note:"a=b"') == {"odd-1"} and found("note:a") == set()
        assert found(f"blob:{odd['blob']}") == {"odd-1"}
        assert found("empty:* function:fn-odd") == {"odd-1"}
        plan = _index_granules(runner, SearchRequest("default", f"user.id:{users[0]}"), "fields_pairs_idx")
        kept, before = plan or (0, 0)
        assert 0 < kept < before, "the new index narrows a field search"

        assert migrate(client) >= 7  # again: nothing changes
        assert found(f"user.id:{users[0]}") == having("user.id", users[0])
    finally:
        client.close()
