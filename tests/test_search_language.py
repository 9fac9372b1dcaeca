"""The search language: what users type, the tree it means, the SQL it compiles to, and clear errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query.search_language import (
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
from query.search_results import decode_ref, encode_ref, highlighter, spans


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
    assert "DROP" not in c.sql and "'" not in c.sql and "\\" not in c.sql
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
