"""Settings: defaults that work for `fnscope up` on a laptop, overridden by fnscope.yaml and FNSCOPE_* variables.

The top of the tree: composes the settings each component owns (limits, retention, alerts) with the process's
own (addresses, tokens), and hands each part what it needs.
"""

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

from fnscope.alerts.config import AlertSettings
from fnscope.canary import Policy
from fnscope.config import (
    DEFAULT_ACCOUNT_CONCURRENCY_LIMIT,
    DEFAULT_PRICE_PER_GB_SECOND,
    DEFAULT_PRICE_PER_REQUEST,
    Limits,
)
from fnscope.processors.retention import Retention


class Settings(BaseSettings):
    """Every setting of fnscope. The YAML file uses the same names; env vars are FNSCOPE_<NAME> (nested: __)."""

    model_config = SettingsConfigDict(env_prefix="FNSCOPE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(Path("./fnscope-data"), description="where `fnscope up` keeps its store")
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(4318, description="port the HTTP server binds")
    kafka: str = Field("", description="Kafka bootstrap servers HOST:PORT[,HOST:PORT] (distributed mode)")
    kafka_partitions: int = Field(6, description="partitions per topic when fnscope creates the topics")
    kafka_topic_prefix: str = Field("fnscope", description="topic names are PREFIX.invocation, PREFIX.log, ...")
    clickhouse: str = Field("", description="http://user:pass@host:8123/db or chdb:///path (default: DATA_DIR/store)")
    clickhouse_cluster: str = Field(
        "",
        pattern=r"^([A-Za-z_][A-Za-z0-9_\-]*)?$",
        description="a ClickHouse cluster (its name in remote_servers): replicated tables on every node, read and "
        "written through Distributed tables sharded by tenant and function",
    )
    tokens: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description='token -> tenant; FNSCOPE_TOKENS="tokenA:tenantA,tokenB:tenantB"'
    )
    retention: Retention = Field(default_factory=Retention, description="days kept per data kind")
    limits: Limits = Field(default_factory=Limits, description="request size and backlog limits")
    account_concurrency_limit: int = Field(
        DEFAULT_ACCOUNT_CONCURRENCY_LIMIT, description="the account's Lambda concurrency quota"
    )
    price_per_gb_second: float = Field(DEFAULT_PRICE_PER_GB_SECOND, description="USD, public x86 Lambda price")
    price_per_request: float = Field(DEFAULT_PRICE_PER_REQUEST, description="USD per invocation")
    alert_webhook_url: str = Field("", description="default notification target for every alert rule")
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="rules, targets, silences")
    canary: Policy = Field(default_factory=Policy, description="what a canary verdict counts as worse")
    audit_signing_key: str = Field(
        "",
        description="signs the audit digests: an HMAC-SHA256 secret, or an Ed25519 private key (PEM text or the "
        "path of a PEM file); a public key alone verifies",
    )
    audit_seal_window_s: float = Field(
        60.0, description="one digest per tenant per window of arrival time that has events"
    )
    audit_seal_settle_s: float = Field(
        15.0, description="a window is sealed this long after it closed (late inserts land first)"
    )
    otlp_metrics_endpoint: str = Field(
        "", description="e.g. http://otel-collector:4318/v1/metrics: also push our own metrics there"
    )
    otlp_metrics_interval_s: float = Field(15.0, description="how often the OTLP push runs")
    metrics_port: int = Field(
        0, description="processor only (it has no HTTP API): serve /metrics on this port; 0 = off"
    )

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

    def base_url(self) -> str:
        """Where users reach this process: the base of links in notifications."""
        return self.alerts.public_url or f"http://{self.host}:{self.port}"


def settings_help() -> str:
    """Every setting with its variable, default and description: the server commands' ``--help`` epilog."""
    lines = ["Settings (fnscope.yaml, --config or FNSCOPE_CONFIG; or these variables):"]

    def walk(model: type[BaseModel], env: str) -> None:
        for name, info in model.model_fields.items():
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel) and name != "alerts":
                walk(kind, f"{env}{name.upper()}__")
                continue
            default = info.get_default(call_default_factory=True)
            shown = f" [{default}]" if default not in ("", None, {}) and name != "alerts" else ""
            lines.append(f"  {env}{name.upper()}{shown}: {info.description or ''}")

    walk(Settings, "FNSCOPE_")
    lines.append("  (alerts: rules, targets and silences go under `alerts:` in fnscope.yaml; see the README)")
    return "\b\n" + "\n".join(lines)


def load_settings(config: str | None = None, **overrides: Any) -> Settings:
    """Settings from the config file (``--config`` wins over FNSCOPE_CONFIG), the environment and overrides."""
    if config:
        os.environ["FNSCOPE_CONFIG"] = config
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
