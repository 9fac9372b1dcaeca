"""Synthetic function log lines for the search benchmark, built as Arrow batches in the real `function_logs` schema.

Vectorised (numpy + pyarrow.compute), so ten million lines take seconds to build; inserted with `insert_arrow`
straight into the store, not over HTTP (ingest speed is bench/ingest.py's subject, not this one's).
Lines look like the simulator's: request-scoped runtime lines, Powertools-style structured lines with fields,
platform REPORT lines; random order ids make the token dictionary as large as real logs make it.
A few needle lines are planted at random times: `NEEDLE_TOKEN`, `NEEDLE_PHRASE`.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NEEDLE_TOKEN = "zq7needle"
NEEDLE_PHRASE = "flux capacitor overheated"
NEEDLES = 5
FUNCTIONS = [f"fn-{i:02d}" for i in range(20)]
_ROUTES = ["GET /orders", "POST /orders", "GET /users", "POST /payments", "GET /search", "PUT /images"]
_OK = ["Order accepted", "Payment captured", "Profile loaded", "Query served", "Thumbnail written"]
_ERR = ["Card processor returned HTTP 502", "Warehouse API timed out", "User record not found", "SNS publish failed"]


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    raw = binascii.hexlify(rng.bytes(n * nbytes))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(2 * nbytes), n, [None, pa.py_buffer(raw)]).cast(pa.string())


def _pick(rng: np.random.Generator, choices: list[str], n: int, p: list[float] | None = None) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(rng.choice(len(choices), n, p=p).astype(np.int32)), pa.array(choices)
    ).cast(pa.string())


def _num(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def _const(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _by_kind(kind: np.ndarray, choices: list[str]) -> pa.Array:
    """choices[kind] for each line, built in Arrow (no Python strings per line)."""
    return pa.DictionaryArray.from_arrays(pa.array(kind.astype(np.int32)), pa.array(choices)).cast(pa.string())


def batch(
    rng: np.random.Generator, start: int, n: int, end: datetime, span: timedelta, tenant: str = "default"
) -> pa.Table:
    ms = rng.integers(0, int(span.total_seconds() * 1000), n)
    times = pa.array(np.datetime64(end.replace(tzinfo=None), "ms") - ms.astype("timedelta64[ms]"))
    function = _pick(rng, FUNCTIONS, n)
    request_id = _hex(rng, n, 16)
    order = pc.binary_join_element_wise("ord_", _hex(rng, n, 5), "")
    kind = rng.choice(4, n, p=[0.35, 0.30, 0.32, 0.03])  # runtime line, structured, REPORT, error
    runtime_msg = pc.binary_join_element_wise("Handling", _pick(rng, _ROUTES, n), "request", " ")
    structured_msg = pc.binary_join_element_wise(
        _pick(rng, _OK, n), "order", order, "amount", _num(rng.integers(100, 99_999, n)), " "
    )
    report_msg = pc.binary_join_element_wise(
        "REPORT RequestId:",
        request_id,
        "\tDuration:",
        _num(np.round(rng.gamma(2.0, 40.0, n), 2)),
        "ms\tMemory Size: 512 MB\tMax Memory Used:",
        _num(rng.integers(60, 500, n)),
        "MB",
        " ",
    )
    error_msg = pc.binary_join_element_wise(_pick(rng, _ERR, n), "(order", order, ")", " ")
    message = pc.case_when(
        pa.StructArray.from_arrays(
            [pa.array(kind == 0), pa.array(kind == 1), pa.array(kind == 2)], names=["a", "b", "c"]
        ),
        runtime_msg,
        structured_msg,
        report_msg,
        error_msg,
    )
    level = _by_kind(kind, ["INFO", "INFO", "", "ERROR"])
    # structured lines carry three fields, the rest none: a MapArray from offsets, keys and values
    has_fields = kind == 1
    offsets = np.zeros(n + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(has_fields * 3)
    rows = np.flatnonzero(has_fields)
    user_ids = rng.integers(1, 100_000, rows.size)
    keys = _by_kind(np.tile(np.arange(3), rows.size), ["user.id", "order_id", "amount_cents"])
    # values interleaved user, order, amount per line: one concatenated array, then a take in that order
    parts = pa.concat_arrays([_num(user_ids), order.take(pa.array(rows)), _num(rng.integers(100, 99_999, rows.size))])
    interleave = (np.arange(rows.size)[:, None] + np.arange(3)[None, :] * rows.size).ravel()
    fields = pa.MapArray.from_arrays(pa.array(offsets), keys, parts.take(pa.array(interleave)))
    event_id = pc.binary_join_element_wise("b", _num(np.arange(start, start + n)), "")
    return pa.table(
        {
            "tenant": _const(tenant, n),
            "event_id": event_id,
            "time": times,
            "account": _const("111122223333", n),
            "region": _const("eu-west-1", n),
            "source": _const("bench", n),
            "function": function,
            "version": _const("$LATEST", n),
            "request_id": request_id,
            "level": level,
            "message": message,
            "log_type": _by_kind(kind, ["function", "function", "platform", "function"]),
            "log_group": pc.binary_join_element_wise("/aws/lambda/", function, ""),
            "log_stream": _const("2026/11/27/[$LATEST]0123456789abcdef", n),
            "trace_id": _const("", n),
            "fields": fields,
        }
    )


def needles(rng: np.random.Generator, end: datetime, span: timedelta) -> pa.Table:
    """Planted lines: NEEDLES with the token (mixed case, inside punctuation), NEEDLES with the phrase."""
    rows = []
    for i in range(NEEDLES * 2):
        when = end - timedelta(milliseconds=int(rng.integers(0, int(span.total_seconds() * 1000))))
        text = f"cache miss for key=ZQ7Needle/{i}" if i < NEEDLES else f"Warning: {NEEDLE_PHRASE.upper()} at stage {i}"
        rows.append(
            {
                "tenant": "default",
                "event_id": f"needle-{i}",
                "time": when.replace(tzinfo=None),
                "account": "111122223333",
                "region": "eu-west-1",
                "source": "bench",
                "function": FUNCTIONS[i % len(FUNCTIONS)],
                "version": "$LATEST",
                "request_id": f"needle-request-{i}",
                "level": "WARN",
                "message": text,
                "log_type": "function",
                "log_group": f"/aws/lambda/{FUNCTIONS[i % len(FUNCTIONS)]}",
                "log_stream": "needle",
                "trace_id": "",
                "fields": [],
            }
        )
    return pa.Table.from_pylist(rows, schema=batch(rng, 0, 1, end, span).schema)


def batches(
    lines: int, end: datetime | None = None, span: timedelta = timedelta(days=1), seed: int = 1, size: int = 1_000_000
) -> Iterator[pa.Table]:
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC)
    yield needles(rng, end, span)
    for start in range(0, lines, size):
        yield batch(rng, start, min(size, lines - start), end, span)
