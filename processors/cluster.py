"""The schema on a ClickHouse cluster (setting ``clickhouse_cluster``): every statement the migrations and the
processors issue for one server, rewritten for a cluster of shards and replicas.

- each table becomes ``NAME_local`` on every node (``ON CLUSTER``), its engine the ``Replicated`` form of the same
  MergeTree (one replication path per shard and table), plus ``NAME`` itself as a ``Distributed`` table over the
  locals, sharded by tenant and function (by tenant where a table has no function): the rows a ReplacingMergeTree
  collapses share tenant and function, so they meet on one shard;
- materialized views run on every node, from the local source table into the local target table;
- ``ALTER`` goes to the locals (and to the distributed table too where it changes columns, which both must list);
- everything else (``INSERT``, ``SELECT``) is unchanged: it names the distributed tables, so readers and writers
  use the same names on one server and on a cluster.

The tables are known from the statements that created them, so a cluster's schema is made by running every
migration in order, from an empty database (as ``migrate`` does on first start).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from clickhouse_connect.driver.client import Client

CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"

_CREATE = re.compile(r"^\s*CREATE TABLE\s+(IF NOT EXISTS\s+)?(\w+)\s*(.*)$", re.S | re.I)
_CREATE_AS = re.compile(r"^AS\s+(\w+)\s*$", re.S | re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)\s*(?:\(([^()]*)\))?", re.I)
_VIEW = re.compile(r"^\s*CREATE MATERIALIZED VIEW\s+(IF NOT EXISTS\s+)?(\w+)\s+TO\s+(\w+)\s+AS\s+(.*)$", re.S | re.I)
_SOURCE = re.compile(r"\b(FROM|JOIN)\s+(\w+)\b(?!\s*\()", re.I)
_ALTER = re.compile(r"^\s*ALTER TABLE\s+(\w+)\s+(.*)$", re.S | re.I)
_COLUMN_CHANGE = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)
_DROP = re.compile(r"^\s*DROP\s+(TABLE|VIEW)\s+(IF EXISTS\s+)?(\w+)\s*$", re.S | re.I)
_EXCHANGE = re.compile(r"^\s*EXCHANGE TABLES\s+(\w+)\s+AND\s+(\w+)\s*$", re.S | re.I)


@dataclass
class _Table:
    columns: list[str]
    storage: str  # "ENGINE = Replicated...(...) PARTITION BY ... ORDER BY ..." as the local table has it


class OnCluster:
    """Rewrites one server's statements for the cluster ``name``; remembers the tables created through it."""

    def __init__(self, name: str) -> None:
        if not CLUSTER_NAME.match(name):
            raise ValueError(f"not a cluster name: {name!r}")
        self.name = name
        self._tables: dict[str, _Table] = {}

    def rewrite(self, sql: str) -> list[str]:
        for pattern, handle in (
            (_CREATE, self._create),
            (_VIEW, self._view),
            (_ALTER, self._alter),
            (_DROP, self._drop),
            (_EXCHANGE, self._exchange),
        ):
            if match := pattern.match(sql):
                return handle(match)
        return [sql]

    def _create(self, match: re.Match[str]) -> list[str]:
        exists, name, rest = match.group(1) or "", match.group(2), match.group(3).strip()
        if copied := _CREATE_AS.match(rest):
            source = self._known(copied.group(1))
            table = _Table(source.columns, source.storage)
            local = (
                f"CREATE TABLE {exists}{name}_local ON CLUSTER {self.name} AS {copied.group(1)}_local {table.storage}"
            )
        else:
            body, storage = _parenthesised(rest)
            engine = _ENGINE.search(storage)
            if engine is None:
                raise ValueError(f"a table on a cluster needs a MergeTree engine: {name}")
            args = f"{REPLICA_PATH}, {engine.group(2)}" if engine.group(2) else REPLICA_PATH
            storage = (
                f"{storage[: engine.start()]}ENGINE = Replicated{engine.group(1)}({args}){storage[engine.end() :]}"
            )
            table = _Table(_column_names(body), storage.strip())
            local = f"CREATE TABLE {exists}{name}_local ON CLUSTER {self.name} ({body}) {table.storage}"
        self._tables[name] = table
        return [local, self._distributed(name, exists)]

    def _distributed(self, name: str, exists: str = "IF NOT EXISTS ") -> str:
        columns = self._known(name).columns
        key = ", ".join(column for column in ("tenant", "function") if column in columns) or "rand()"
        return (
            f"CREATE TABLE {exists}{name} ON CLUSTER {self.name} AS {name}_local "
            f"ENGINE = Distributed('{self.name}', currentDatabase(), '{name}_local', cityHash64({key}))"
        )

    def _view(self, match: re.Match[str]) -> list[str]:
        exists, name, target, select = match.group(1) or "", match.group(2), match.group(3), match.group(4)
        local_select = _SOURCE.sub(
            lambda m: f"{m.group(1)} {m.group(2)}_local" if m.group(2) in self._tables else m.group(0), select
        )
        return [f"CREATE MATERIALIZED VIEW {exists}{name} ON CLUSTER {self.name} TO {target}_local AS {local_select}"]

    def _alter(self, match: re.Match[str]) -> list[str]:
        name, change = match.group(1), match.group(2)
        statements = [f"ALTER TABLE {name}_local ON CLUSTER {self.name} {change}"]
        if _COLUMN_CHANGE.match(change):
            statements.append(f"ALTER TABLE {name} ON CLUSTER {self.name} {change}")
        return statements

    def _drop(self, match: re.Match[str]) -> list[str]:
        kind, exists, name = match.group(1).upper(), match.group(2) or "", match.group(3)
        if kind == "VIEW":
            return [f"DROP VIEW {exists}{name} ON CLUSTER {self.name} SYNC"]
        self._tables.pop(name, None)
        return [
            f"DROP TABLE {exists}{name} ON CLUSTER {self.name} SYNC",
            f"DROP TABLE {exists}{name}_local ON CLUSTER {self.name} SYNC",
        ]

    def _exchange(self, match: re.Match[str]) -> list[str]:
        first, second = match.group(1), match.group(2)
        self._tables[first], self._tables[second] = self._known(second), self._known(first)
        # each distributed table is made anew over its local, so that it lists the columns the local now has
        return [
            f"EXCHANGE TABLES {first}_local AND {second}_local ON CLUSTER {self.name}",
            *(f"DROP TABLE IF EXISTS {name} ON CLUSTER {self.name} SYNC" for name in (first, second)),
            self._distributed(first),
            self._distributed(second),
        ]

    def _known(self, name: str) -> _Table:
        if name not in self._tables:
            raise ValueError(f"table {name} was not created through this cluster's migrations")
        return self._tables[name]


class ClusterClient:
    """A store handle whose ``command`` runs each statement as rewritten for the cluster; queries and inserts pass
    through (they name the distributed tables)."""

    def __init__(self, client: Client, cluster: OnCluster) -> None:
        self._client, self.cluster = client, cluster

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        result = None
        for statement in self.cluster.rewrite(sql):
            result = self._client.command(statement, *args, **kwargs)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def on_cluster(client: Client, cluster: str) -> Client:
    """``client`` itself on one server (``cluster`` empty); on a cluster, ``client`` rewriting its commands for it
    (typed as the client it stands for: callers use it as one)."""
    return cast(Client, ClusterClient(client, OnCluster(cluster))) if cluster else client


def _outside_quotes(text: str) -> Iterator[tuple[int, str]]:
    """Each character of ``text`` that is not inside a quoted string or name, with its index."""
    quote, escaped = "", False
    for i, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        else:
            yield i, char


def _parenthesised(text: str) -> tuple[str, str]:
    """``(body) rest`` → (body, rest)."""
    depth = 0
    for i, char in _outside_quotes(text):
        if i == 0 and char != "(":
            break
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return text[1:i], text[i + 1 :]
    raise ValueError(f"expected a column list: {text[:40]!r}")


def _column_names(body: str) -> list[str]:
    """The columns a column list defines (its indexes, projections and constraints left out)."""
    cuts, depth = [-1], 0
    for i, char in _outside_quotes(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            cuts.append(i)
    items = [body[a + 1 : b] for a, b in zip(cuts, [*cuts[1:], len(body)])]
    words = [item.split() for item in items]
    return [w[0].strip("`") for w in words if w and w[0].upper() not in ("INDEX", "PROJECTION", "CONSTRAINT")]
