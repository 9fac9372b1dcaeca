"""Settings: defaults that work for `fnscope up` on a laptop, overridden by fnscope.yaml and FNSCOPE_* variables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from alerts.config import AlertSettings
from processors.schema import Retention


class Limits(BaseModel):
    max_body_bytes: int = 16 * 1024 * 1024  # as sent, before decompression
    max_decompressed_bytes: int = 64 * 1024 * 1024
    max_records_per_request: int = 100_000
    max_pending_events: int = 1_000_000  # embedded store backlog before answering 429
    max_field_chars: int = 262_144  # longer strings (a log line, a raw record) are truncated, with a marker
    rate_limit: str = ""  # per token, e.g. "100/second" or "5000/minute" (the `limits` notation); "" = none


class Settings(BaseSettings):
    """Every setting of fnscope. The YAML file uses the same names; env vars are FNSCOPE_<NAME> (nested: __)."""

    model_config = SettingsConfigDict(env_prefix="FNSCOPE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("./fnscope-data")
    host: str = "127.0.0.1"
    port: int = 4318
    kafka: str = ""  # bootstrap servers HOST:PORT[,HOST:PORT]
    kafka_partitions: int = 6
    kafka_topic_prefix: str = "fnscope"
    clickhouse: str = ""  # http://user:pass@host:8123/db or chdb:///path
    tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, description="token -> tenant")
    retention: Retention = Field(default_factory=Retention)
    limits: Limits = Field(default_factory=Limits)
    account_concurrency_limit: int = 1000
    price_per_gb_second: float = 0.0000166667  # USD, public x86 Lambda price
    price_per_request: float = 0.0000002  # USD per invocation
    alert_webhook_url: str = ""
    alerts: AlertSettings = Field(default_factory=AlertSettings)  # rules, targets, silences (alerts/)
    # audit hash chain: HMAC-SHA256 secret, or an Ed25519 private key (PEM text or the path of a PEM file)
    audit_signing_key: str = ""
    audit_seal_window_s: float = 60.0  # one digest per tenant per window of arrival time that has events
    audit_seal_settle_s: float = 15.0  # a window is sealed this long after it closed (late inserts land first)
    otlp_metrics_endpoint: str = ""  # e.g. http://otel-collector:4318/v1/metrics: also push our own metrics there
    otlp_metrics_interval_s: float = 15.0
    metrics_port: int = 0  # processor only (it has no HTTP API): serve /metrics on this port; 0 = off

    @field_validator("tokens", mode="before")
    @classmethod
    def _parse_token_list(cls, value: Any) -> Any:
        """FNSCOPE_TOKENS="tokenA:tenantA,tokenB:tenantB" as well as a YAML mapping."""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            return json.loads(value)
        if isinstance(value, str):
            pairs = (item.split(":", 1) for item in value.split(",") if item.strip())
            return {token.strip(): (tenant.strip() or "default") for token, tenant in pairs}
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = os.environ.get("FNSCOPE_CONFIG", "fnscope.yaml")
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=config_path)
        return init_settings, env_settings, yaml_source

    def clickhouse_dsn(self) -> str:
        return self.clickhouse or f"chdb://{self.data_dir.resolve() / 'store'}"


def load_settings(config: str | None = None, **overrides: Any) -> Settings:
    """Settings from the config file (``--config`` wins over FNSCOPE_CONFIG), the environment and overrides."""
    if config:
        os.environ["FNSCOPE_CONFIG"] = config
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
