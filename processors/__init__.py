"""Processors: normalized events into ClickHouse, in columnar batches, duplicates made invisible."""
