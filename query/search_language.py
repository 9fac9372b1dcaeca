"""The log search language: parsed into a small tree, compiled to a ClickHouse condition with bound parameters.

    payment failed                 both words (implicit AND), whole words, any case
    "card declined"                a phrase: these words, in this order
    timeout OR oom, NOT retry, -retry, (a OR b) c
    function:checkout  level:error  request_id:ID  version:7  log_type:platform  trace_id:ID
    level:>=warn                   severity at least WARN
    user.id:42  order_id:"ord 1"   any field of a JSON structured log (flattened with dots)
    amount_cents:>500              numeric comparison (>, >=, <, <=) on a field
    function:check*  user.id:*     prefix match, field present
    /time(d|out)\\s+after/i         a regular expression (RE2), bounded in time by the caller

Words are tokens as the text index cuts them (runs of letters and digits), so ``timeout`` matches
"Timeout:" and "[timeout]" but not "timeouts"; a word with punctuation inside (``user-42``, ``ord_9f``) is
searched as the phrase of its tokens. AND, OR and NOT are operators only in capitals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_QUERY_CHARS = 2000
MAX_TERMS = 64
MAX_DEPTH = 16


class QuerySyntaxError(ValueError):
    """A query that cannot be understood; the message says where and why (the API answers 400 with it)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"at character {position + 1}: {message}")


# ------------------------------------------------------------------------------------------------ the tree


@dataclass(frozen=True)
class Text:
    """A word or a "phrase" matched against the message."""

    text: str
    phrase: bool = False


@dataclass(frozen=True)
class Regex:
    pattern: str
    ignore_case: bool = False


@dataclass(frozen=True)
class Field:
    name: str
    op: str  # "=", ">", ">=", "<", "<=", "prefix", "exists"
    value: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Text | Regex | Field | Not | And | Or


# ------------------------------------------------------------------------------------------------ lexing

_FIELD_NAME = re.compile(r"[A-Za-z_@$][\w.@$\-]*")
_OPS = (">=", "<=", ">", "<", "=")
_SPECIAL = set('()"')


@dataclass
class _Tok:
    kind: str  # "(", ")", "AND", "OR", "NOT", "-", "text", "phrase", "regex", "field"
    pos: int
    value: Any = None


def _read_quoted(q: str, i: int, quote: str) -> tuple[str, int]:
    """The text between ``quote`` at q[i] and its closing partner (backslash escapes it); index after."""
    out, j = [], i + 1
    while j < len(q):
        ch = q[j]
        if ch == "\\" and j + 1 < len(q):
            nxt = q[j + 1]
            # in a regex keep the backslash unless it escapes the delimiter: \d, \s stay what RE2 expects
            out.append(nxt if (nxt == quote or quote == '"') else ch + nxt)
            j += 2
            continue
        if ch == quote:
            return "".join(out), j + 1
        out.append(ch)
        j += 1
    kind = "phrase" if quote == '"' else "regular expression"
    raise QuerySyntaxError(f"unclosed {kind}: add the closing {quote}", i)


def _bare(q: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(q) and not q[j].isspace() and q[j] not in _SPECIAL:
        j += 1
    return q[i:j], j


def _lex(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(q):
        ch = q[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            toks.append(_Tok(ch, i))
            i += 1
        elif ch == '"':
            text, end = _read_quoted(q, i, '"')
            toks.append(_Tok("phrase", i, text))
            i = end
        elif ch == "/" and (regex := _regex(q, i)) is not None:
            value, end = regex
            toks.append(_Tok("regex", i, value))
            i = end
        elif ch == "-" and i + 1 < len(q) and not q[i + 1].isspace() and q[i + 1] != "-":
            toks.append(_Tok("-", i))
            i += 1
        else:
            start = i
            word, i = _bare(q, i)
            if word in ("AND", "OR", "NOT"):
                toks.append(_Tok(word, start))
                continue
            name, sep, rest = word.partition(":")
            if sep and _FIELD_NAME.fullmatch(name):
                toks.append(_Tok("field", start, _field(name, rest, q, i, start)))
                if rest == "" and i < len(q) and q[i] == '"':
                    value, i = _read_quoted(q, i, '"')
                    toks[-1].value = Field(name, "=", value)
                continue
            toks.append(_Tok("text", start, word))
    return toks


def _regex(q: str, i: int) -> tuple[Regex, int] | None:
    """``/pattern/`` or ``/pattern/i`` standing alone; None for a path like ``/orders`` or ``/a/b``."""
    try:
        pattern, j = _read_quoted(q, i, "/")
    except QuerySyntaxError:
        return None
    ignore_case = j < len(q) and q[j] == "i"
    end = j + 1 if ignore_case else j
    if not pattern or (end < len(q) and not q[end].isspace() and q[end] != ")"):
        return None
    return Regex(pattern, ignore_case), end


def _field(name: str, rest: str, q: str, end: int, start: int) -> Field:
    if rest == "":
        if end < len(q) and q[end] == '"':
            return Field(name, "=", "")  # replaced by the quoted value by the caller
        raise QuerySyntaxError(f"{name}: needs a value, e.g. {name}:value", start)
    for op in _OPS:
        if rest.startswith(op):
            value = rest[len(op) :]
            if not value:
                raise QuerySyntaxError(f"{name}{op}: needs a value after {op}", start)
            return Field(name, "=" if op == "=" else op, value)
    if rest == "*":
        return Field(name, "exists", "")
    if rest.endswith("*") and len(rest) > 1 and "*" not in rest[:-1]:
        return Field(name, "prefix", rest[:-1])
    return Field(name, "=", rest)


# ------------------------------------------------------------------------------------------------ parsing


class _Parser:
    def __init__(self, toks: list[_Tok], length: int) -> None:
        self.toks, self.i, self.length, self.terms = toks, 0, length, 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node | None:
        if not self.toks:
            return None
        node = self.or_(0)
        tok = self.peek()
        if tok is not None:
            raise QuerySyntaxError("unmatched ) : remove it or add a ( before", tok.pos)
        return node

    def or_(self, depth: int) -> Node:
        children = [self.and_(depth)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            children.append(self.and_(depth))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_(self, depth: int) -> Node:
        children = [self.not_(depth)]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.take()
            children.append(self.not_(depth))
        return children[0] if len(children) == 1 else And(tuple(children))

    def not_(self, depth: int) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind in ("NOT", "-"):
            if depth >= MAX_DEPTH:
                raise QuerySyntaxError(f"more than {MAX_DEPTH} NOTs in a row", tok.pos)
            self.take()
            return Not(self.not_(depth + 1))
        return self.atom(depth)

    def atom(self, depth: int) -> Node:
        tok = self.peek()
        if tok is None:
            raise QuerySyntaxError("the query ends where a word, phrase or field was expected", self.length)
        if tok.kind in ("AND", "OR"):
            raise QuerySyntaxError(f"{tok.kind} needs a term on both sides", tok.pos)
        if tok.kind == ")":
            raise QuerySyntaxError("unmatched ) : remove it or add a ( before", tok.pos)
        self.take()
        if tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise QuerySyntaxError(f"parentheses nest deeper than {MAX_DEPTH}", tok.pos)
            if (nxt := self.peek()) is not None and nxt.kind == ")":
                raise QuerySyntaxError("empty parentheses", tok.pos)
            node = self.or_(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                raise QuerySyntaxError("unclosed ( : add the closing )", tok.pos)
            self.take()
            return node
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QuerySyntaxError(f"more than {MAX_TERMS} terms", tok.pos)
        if tok.kind == "phrase":
            if not tok.value.strip():
                raise QuerySyntaxError("empty phrase", tok.pos)
            return Text(tok.value, phrase=True)
        if tok.kind in ("regex", "field"):
            return tok.value
        return Text(tok.value)


def parse(query: str) -> Node | None:
    """The query's tree, or None for an empty query (everything matches)."""
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in query:
        raise QuerySyntaxError("the query contains a NUL character")
    return _Parser(_lex(query), len(query)).parse()


# ------------------------------------------------------------------------------------------------ writing

# A value that reads back as itself written bare after ``name:`` (no quotes, spaces, parentheses, comparison or
# wildcard): anything else is written as a quoted phrase.
_BARE_VALUE = re.compile(r"[\w.@$\-+/:,#%&!?~^|\[\]{}']+")


def equals_filter(name: str, value: str) -> str | None:
    """``name:value`` as the query language reads it back (quoted when needed), or None when no filter can say it
    exactly: a name the language can't write, a NUL, longer than a query may be, or an empty value (``key:""``
    also matches lines without the key)."""
    if not _FIELD_NAME.fullmatch(name) or "\x00" in value or not value:
        return None
    if _BARE_VALUE.fullmatch(value):
        written = f"{name}:{value}"
    else:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        written = f'{name}:"{escaped}"'
    return written if len(written) <= MAX_QUERY_CHARS else None


# ------------------------------------------------------------------------------------------------ compiling

# Text-index tokens: what ClickHouse's splitByNonAlpha keeps (ASCII letters and digits, and any non-ASCII).
_TOKEN = re.compile(r"[A-Za-z0-9\u0080-\U0010ffff]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_LEVEL_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "INFORMATION": "INFO"}
COLUMNS = {"function", "level", "request_id", "version", "log_type", "trace_id"}
# Each structured-log field as one string, key NUL value (a query can't hold a NUL, so no other pair spells the
# same): migration v007's exact index is over this expression, spelt the same, or the index goes unused.
PAIR_SEPARATOR = "'\\0'"
FIELD_PAIRS = f"arrayMap((k, v) -> concat(k, {PAIR_SEPARATOR}, v), mapKeys(fields), mapValues(fields))"


def ascii_lower(text: str) -> str:
    """What ClickHouse's lower() does: ASCII letters only (the index is built over it)."""
    return text.translate(_ASCII_LOWER)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def level_name(value: str) -> str:
    level = value.upper()
    level = _LEVEL_ALIASES.get(level, level)
    if level not in LEVELS:
        raise QuerySyntaxError(f"level:{value}: not a level; use one of {', '.join(LEVELS).lower()}")
    return level


@dataclass
class Compiled:
    """A WHERE condition, its parameters, and what to mark in matching lines."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    highlight: list[Text | Regex] = field(default_factory=list)
    has_regex: bool = False


class _Compiler:
    def __init__(self, prefix: str) -> None:
        self.prefix, self.params, self.highlight, self.has_regex = prefix, {}, [], False

    def bind(self, value: Any, type_: str) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{type_}}}"

    def node(self, node: Node, negated: bool = False) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(c, negated) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(c, negated) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"NOT {self.node(node.child, not negated)}"
        if isinstance(node, Text):
            if not negated:
                self.highlight.append(node)
            return self.text(node.text)
        if isinstance(node, Regex):
            self.has_regex = True
            if not negated:
                self.highlight.append(node)
            pattern = f"(?i){node.pattern}" if node.ignore_case else node.pattern
            return f"match(message, {self.bind(pattern, 'String')})"
        return self.field(node)

    def text(self, text: str) -> str:
        toks = [ascii_lower(t) for t in tokens(text)]
        if len(toks) == 1 and toks[0] == ascii_lower(text):
            return f"hasToken(lower(message), {self.bind(toks[0], 'String')})"
        substring = f"positionCaseInsensitive(message, {self.bind(text, 'String')}) > 0"
        if not toks:
            return substring
        # the index narrows to granules holding every token; the substring check keeps their order
        return f"(hasAllTokens(lower(message), {self.bind(toks, 'Array(String)')}) AND {substring})"

    def field(self, f: Field) -> str:
        if f.name == "message":
            if f.op not in ("=",):
                raise QuerySyntaxError("message: takes a word or a phrase")
            return self.text(f.value)
        if f.name == "level":
            return self.level(f)
        if f.name in COLUMNS:
            column = f.name
            if f.op == "=":
                return f"{column} = {self.bind(f.value, 'String')}"
            if f.op == "prefix":
                return f"startsWith({column}, {self.bind(f.value, 'String')})"
            if f.op == "exists":
                return f"{column} != ''"
            raise QuerySyntaxError(f"{f.name}:{f.op}{f.value}: {f.name} is not a number; use {f.name}:value")
        key = self.bind(f.name, "String")
        if f.op == "exists":
            return f"mapContains(fields, {key})"
        if f.op == "prefix":
            return f"startsWith(fields[{key}], {self.bind(f.value, 'String')})"
        if f.op == "=" and f.value == "":
            return f"fields[{key}] = {self.bind('', 'String')}"  # a missing field reads as empty, and matches too
        if f.op == "=":
            return f"has({FIELD_PAIRS}, concat({key}, {PAIR_SEPARATOR}, {self.bind(f.value, 'String')}))"
        try:
            number = float(f.value)
        except ValueError:
            raise QuerySyntaxError(f"{f.name}:{f.op}{f.value}: {f.value!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise QuerySyntaxError(f"{f.name}:{f.op}{f.value}: not a finite number")
        return f"toFloat64OrNull(fields[{key}]) {f.op} {self.bind(number, 'Float64')}"

    def level(self, f: Field) -> str:
        if f.op == "exists":
            return "level != ''"
        if f.op == "prefix":
            raise QuerySyntaxError("level: takes a level name, e.g. level:error or level:>=warn")
        level = level_name(f.value)
        if f.op == "=":
            return f"level = {self.bind(level, 'String')}"
        rank = LEVELS.index(level)
        picked = [
            lvl
            for i, lvl in enumerate(LEVELS)
            if {">": i > rank, ">=": i >= rank, "<": i < rank, "<=": i <= rank}[f.op]
        ]
        return f"level IN {self.bind(picked, 'Array(String)')}"


def compile_query(query: str, prefix: str = "q") -> Compiled:
    """Parse and compile; every user value becomes a parameter named ``{prefix}N``."""
    tree = parse(query)
    if tree is None:
        return Compiled("1")
    compiler = _Compiler(prefix)
    sql = compiler.node(tree)
    return Compiled(sql, compiler.params, compiler.highlight, compiler.has_regex)
