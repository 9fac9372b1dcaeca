"""Topic setup shared by collectors and processors."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from fnscope.transport import all_topics


def ensure_topics(bootstrap: str, prefix: str, partitions: int, replication: int = 1) -> None:
    """Create the per-signal topics if they don't exist yet (any number of roles may race to do it)."""
    # a broker that is not up fails this within seconds (the caller retries and says why), not the default 30 s
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fnscope-admin", bootstrap_timeout_ms=5000)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication)
            for name in all_topics(prefix)
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
