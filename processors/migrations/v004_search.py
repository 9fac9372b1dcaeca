"""Indexes for log search: case-insensitive words, structured-log fields, and the live tail.

- ``message_lc_idx``: a text index over ``lower(message)``. Search asks ``hasToken(lower(message), ...)``, which
  is exactly case-insensitive whether or not a part has the index yet, and skips every granule without the word.
  It replaces v001's case-sensitive ``message_idx``, which no query uses any more (one text index less per insert).
- ``fields_values_idx``: a bloom filter over the structured-log field values, so ``user.id:42`` skips granules.
- ``ingested_idx``: min/max of arrival time per granule, so the live tail reads only the newest granules.

``MATERIALIZE INDEX`` builds them for parts written before this migration (a background mutation).
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "search indexes: lower-case text index, field values, arrival time"

_INDEXES = {
    "message_lc_idx": "lower(message) TYPE text(tokenizer = 'splitByNonAlpha')",
    "fields_values_idx": "mapValues(fields) TYPE bloom_filter(0.01) GRANULARITY 1",
    "ingested_idx": "ingested_at TYPE minmax GRANULARITY 1",
}


def statements(_: Retention) -> list[str]:
    out = ["ALTER TABLE function_logs DROP INDEX IF EXISTS message_idx"]
    for name, definition in _INDEXES.items():
        out.append(f"ALTER TABLE function_logs ADD INDEX IF NOT EXISTS {name} {definition}")
        out.append(f"ALTER TABLE function_logs MATERIALIZE INDEX {name}")
    return out
