"""The query side: search, audit and stats over ClickHouse, served as the JSON API and used by the CLI."""
