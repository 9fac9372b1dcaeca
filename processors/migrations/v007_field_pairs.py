"""An exact index of structured-log fields, so ``user.id:42`` reads only the granules holding that pair.

v004's bloom filter over field *values* matched a granule wherever 42 was any field's value (an amount, a count) and
still read the whole ``fields`` map of every candidate to check. ``fields_pairs_idx`` is a text index whose tokens
are whole ``key NUL value`` pairs (tokenizer ``array``: one token per element, no splitting), so a search asks
``has(<the same expression>, concat(key, '\\0', value))``: the index names the exact rows, the map is not read to
filter, and long values are kept whole. A NUL can't occur in a query (the language refuses it), so no other pair
spells the same token. It supersedes ``fields_values_idx``, which goes: one index less per insert.

``MATERIALIZE INDEX`` builds it for parts written before this migration, as a background mutation (the migration
returns at once); until a part has it, the same condition is computed from the map, with the same answers.
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "search: exact index of structured-log field pairs"

# query.search_language.FIELD_PAIRS must spell the same expression, or the index is not used
FIELD_PAIRS = "arrayMap((k, v) -> concat(k, '\\0', v), mapKeys(fields), mapValues(fields))"


def statements(_: Retention) -> list[str]:
    # the drop first: an ALTER waits for the table's running mutations, and the build below is one
    return [
        "ALTER TABLE function_logs DROP INDEX IF EXISTS fields_values_idx",
        f"ALTER TABLE function_logs ADD INDEX IF NOT EXISTS fields_pairs_idx {FIELD_PAIRS} TYPE text(tokenizer = 'array')",
        # in the background (chDB's default is to wait): a large store's build must not hold up `fnscope up`
        "ALTER TABLE function_logs MATERIALIZE INDEX fields_pairs_idx SETTINGS mutations_sync = 0",
    ]
