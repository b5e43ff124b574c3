"""The one settings object, built from WAFLOW_* environment variables at the edge.

Nothing below the command line reads os.environ: the CLI calls `Settings.from_env()` once, the
result is validated here with messages that say what is wrong and how to fix it, then passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from infra.core.errors import SettingsError
from schemas import catalog

T = TypeVar("T")
INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's group.instance.id characters


@dataclass(frozen=True)
class AppSecret:
    """One Meta app's secret, with the label recorded in Kafka headers (never the secret)."""

    label: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class Topics:
    """Every topic and consumer group name, under one prefix (the names after it are
    schemas/catalog.py's)."""

    raw: str = f"waflow.{catalog.RAW_TOPIC}"
    responses: str = f"waflow.{catalog.RESPONSES.topic}"
    events: str = f"waflow.{catalog.EVENTS.topic}"
    other: str = f"waflow.{catalog.OTHER.topic}"
    dlq: str = f"waflow.{catalog.DLQ.topic}"
    items: str = f"waflow.{catalog.ITEMS_TOPIC}"  # internal: normalized items by dedup id
    schemas: str = f"waflow.{catalog.SCHEMAS_TOPIC}"  # every writer schema, by fingerprint
    sends: str = f"waflow.{catalog.SENDS_TOPIC}"  # the business's flow sends (JSON)
    prefix: str = "waflow"

    @property
    def streams_group(self) -> str:
        """The stream worker's consumer group, which is also its Faust app id."""
        return f"{self.prefix}-{catalog.STREAMS_GROUP}"

    @property
    def sink_group(self) -> str:
        return f"{self.prefix}-{catalog.SINK_GROUP}"

    @property
    def claims_changelog(self) -> str:
        """The stream worker's dedup table changelog (Faust's `<app id>-<table>-changelog`)."""
        return f"{self.streams_group}-claims-changelog"

    def typed(self, kind: str) -> str:
        """The typed topic of a kind of schemas/catalog.py."""
        return f"{self.prefix}.{catalog.BY_KIND[kind].topic}"

    @property
    def sink_inputs(self) -> tuple[str, ...]:
        """The typed topics the sink loads: each kind's of the catalog, dead letters included."""
        return tuple(self.typed(k.kind) for k in catalog.KINDS)

    @property
    def sink_reads(self) -> tuple[str, ...]:
        """Every topic the sink consumes: the typed ones and the business's flow sends."""
        return (*self.sink_inputs, self.sends)

    @classmethod
    def named(cls, prefix: str) -> Topics:
        """Every name under one prefix, so staging or a test can share a cluster safely."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", prefix):
            raise SettingsError(
                f"WAFLOW_TOPIC_PREFIX={prefix!r}: use letters, digits, '_' or '-' (default waflow)"
            )
        return cls(
            raw=f"{prefix}.{catalog.RAW_TOPIC}",
            responses=f"{prefix}.{catalog.RESPONSES.topic}",
            events=f"{prefix}.{catalog.EVENTS.topic}",
            other=f"{prefix}.{catalog.OTHER.topic}",
            dlq=f"{prefix}.{catalog.DLQ.topic}",
            items=f"{prefix}.{catalog.ITEMS_TOPIC}",
            schemas=f"{prefix}.{catalog.SCHEMAS_TOPIC}",
            sends=f"{prefix}.{catalog.SENDS_TOPIC}",
            prefix=prefix,
        )


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of waflow authenticates and encrypts (infra/kafka.py uses it)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_ca: Path | None = None
    ssl_cert: Path | None = None
    ssl_key: Path | None = None

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def validate(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(
                f"WAFLOW_KAFKA_SECURITY_PROTOCOL={self.protocol!r}: use one of "
                + ", ".join(SECURITY_PROTOCOLS)
            )
        if self.sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise SettingsError(
                    f"WAFLOW_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r}: with "
                    f"{self.protocol} use one of {', '.join(SASL_MECHANISMS)} (your provider's "
                    "console says which; MSK uses SCRAM-SHA-512, Confluent Cloud PLAIN)"
                )
            if not self.sasl_username or not self.sasl_password:
                raise SettingsError(
                    f"{self.protocol} needs WAFLOW_KAFKA_SASL_USERNAME and "
                    "WAFLOW_KAFKA_SASL_PASSWORD (or WAFLOW_KAFKA_SASL_PASSWORD_FILE)"
                )
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            raise SettingsError(
                f"WAFLOW_KAFKA_SASL_* is set but WAFLOW_KAFKA_SECURITY_PROTOCOL={self.protocol}: "
                "use SASL_SSL (or SASL_PLAINTEXT) to log in, or unset the SASL settings"
            )
        if not self.tls and (self.ssl_ca or self.ssl_cert or self.ssl_key):
            raise SettingsError(
                f"WAFLOW_KAFKA_SSL_* is set but WAFLOW_KAFKA_SECURITY_PROTOCOL={self.protocol}: "
                "use SSL or SASL_SSL, or unset the SSL settings"
            )
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise SettingsError(
                "set both WAFLOW_KAFKA_SSL_CERT and WAFLOW_KAFKA_SSL_KEY (a client certificate "
                "for mutual TLS to the broker), or neither"
            )
        for name, path in (
            ("WAFLOW_KAFKA_SSL_CA", self.ssl_ca),
            ("WAFLOW_KAFKA_SSL_CERT", self.ssl_cert),
            ("WAFLOW_KAFKA_SSL_KEY", self.ssl_key),
        ):
            if path is not None and not path.is_file():
                raise SettingsError(f"{name}={path} is not a readable file")


@dataclass(frozen=True)
class Settings:
    app_secrets: tuple[AppSecret, ...] = field(repr=False)
    verify_token: str = field(repr=False)
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security: KafkaSecurity = KafkaSecurity()
    # A server URL may carry a password: neither field is ever printed.
    clickhouse_url: str = field(default="", repr=False)
    clickhouse_password: str = field(default="", repr=False)
    clickhouse_ca: Path | None = None
    clickhouse_cluster: str = ""
    # The Confluent wire format when set (infra/core/confluent.py); unset: single-object Avro.
    schema_registry_url: str = field(default="", repr=False)
    schema_registry_user: str = ""
    schema_registry_password: str = field(default="", repr=False)
    schema_registry_ca: Path | None = None
    # Days each table keeps its rows (0: forever); catalog.RETENTION has the defaults.
    clickhouse_ttl_days: tuple[tuple[str, int], ...] = tuple(
        (table, days) for table, (_, days) in catalog.RETENTION.items()
    )
    flow_token_pattern: str = ""  # a regex with a group `flow` (streams/policy.py)
    pii: str = "keep"  # keep | hash | drop (streams/policy.py)
    pii_key: str = field(default="", repr=False)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    streams_port: int = 8081
    sink_port: int = 8082
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
    ingest_admin_port: int = 8083
    sink_stall_s: float = 120.0
    # How long the stream worker's group waits for a member that stopped heartbeating (a
    # worker killed hard) before giving its partitions to another: the restart-to-output time.
    streams_session_timeout_s: float = 10.0
    # Kafka static membership (group.instance.id): a worker restarted under the same id takes
    # its partitions back at once instead of after the session timeout. One id per replica,
    # stable across its restarts (a StatefulSet pod's name); "" leaves it off.
    streams_instance_id: str = ""
    dlq_payload_bytes: int = 64 * 1024
    data_dir: Path = Path(".waflow")
    max_body_bytes: int = 4 * 1024 * 1024
    produce_timeout_s: float = 5.0
    topics: Topics = Topics()
    raw_partitions: int = 6
    replication_factor: int = 1
    raw_retention_days: int = 14
    dedup_window_days: int = 7
    claims_cache_mb: int = 16
    sink_batch_rows: int = 50_000
    sink_batch_seconds: float = 1.0
    log_level: str = "INFO"
    streams_verify: bool = False
    streams_guarantee: str = "at_least_once"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    tls_client_name: str = ""
    tls_client_crl: Path | None = None
    tls_reload_s: float = 60.0
    trusted_proxies: tuple[str, ...] = ()
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_concurrent_requests: int = 512
    refusal_log_s: float = 10.0

    def _check_policy(self) -> None:
        if self.flow_token_pattern:
            try:
                pattern = re.compile(self.flow_token_pattern)
            except re.error as exc:
                raise SettingsError(
                    f"WAFLOW_FLOW_TOKEN_PATTERN is not a regular expression: {exc}"
                ) from exc
            if "flow" not in pattern.groupindex:
                raise SettingsError(
                    "WAFLOW_FLOW_TOKEN_PATTERN needs a named group `flow`, e.g. ^(?P<flow>\\d+):"
                )
        if self.pii not in ("keep", "hash", "drop"):
            raise SettingsError(f"WAFLOW_PII={self.pii!r}: use keep, hash or drop")
        if self.pii == "hash" and len(self.pii_key) < 16:
            raise SettingsError(
                "WAFLOW_PII=hash needs WAFLOW_PII_KEY (or _FILE): a secret of 16 characters or "
                "more, kept stable (another key gives other hashes, and joins across it break)"
            )

    def _check_registry(self) -> None:
        url = self.schema_registry_url
        scheme = urlsplit(url).scheme
        if url and scheme not in ("http", "https", "mock"):
            raise SettingsError(
                "WAFLOW_SCHEMA_REGISTRY_URL: give the registry's http(s):// URL "
                "(mock:// is confluent-kafka's in-memory registry, for tests only)"
            )
        extras = self.schema_registry_user or self.schema_registry_password
        if not url and (extras or self.schema_registry_ca):
            raise SettingsError(
                "WAFLOW_SCHEMA_REGISTRY_USER / _PASSWORD / _CA are set without "
                "WAFLOW_SCHEMA_REGISTRY_URL: set the URL too, or unset them"
            )
        if bool(self.schema_registry_user) != bool(self.schema_registry_password):
            raise SettingsError(
                "WAFLOW_SCHEMA_REGISTRY_USER and WAFLOW_SCHEMA_REGISTRY_PASSWORD(_FILE) go "
                "together (HTTP basic auth): set both or neither"
            )
        if self.schema_registry_ca is not None and not self.schema_registry_ca.is_file():
            raise SettingsError(
                f"WAFLOW_SCHEMA_REGISTRY_CA={self.schema_registry_ca} is not a readable file"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("WAFLOW_DATA_DIR", ".waflow")).absolute()
        url = env.get("WAFLOW_CLICKHOUSE_URL", f"chdb://{data_dir / 'clickhouse'}")
        settings = cls(
            app_secrets=parse_app_secrets(secret(env, "WAFLOW_APP_SECRETS")),
            verify_token=secret(env, "WAFLOW_VERIFY_TOKEN"),
            kafka_bootstrap=env.get("WAFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            kafka_security=KafkaSecurity(
                protocol=env.get("WAFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper(),
                sasl_mechanism=env.get("WAFLOW_KAFKA_SASL_MECHANISM", "").strip().upper(),
                sasl_username=env.get("WAFLOW_KAFKA_SASL_USERNAME", "").strip(),
                sasl_password=secret(env, "WAFLOW_KAFKA_SASL_PASSWORD"),
                ssl_ca=_path(env, "WAFLOW_KAFKA_SSL_CA"),
                ssl_cert=_path(env, "WAFLOW_KAFKA_SSL_CERT"),
                ssl_key=_path(env, "WAFLOW_KAFKA_SSL_KEY"),
            ),
            clickhouse_url=url,
            clickhouse_password=secret(env, "WAFLOW_CLICKHOUSE_PASSWORD"),
            clickhouse_ca=_path(env, "WAFLOW_CLICKHOUSE_CA"),
            clickhouse_cluster=env.get("WAFLOW_CLICKHOUSE_CLUSTER", "").strip(),
            schema_registry_url=env.get("WAFLOW_SCHEMA_REGISTRY_URL", "").strip(),
            schema_registry_user=env.get("WAFLOW_SCHEMA_REGISTRY_USER", "").strip(),
            schema_registry_password=secret(env, "WAFLOW_SCHEMA_REGISTRY_PASSWORD"),
            schema_registry_ca=_path(env, "WAFLOW_SCHEMA_REGISTRY_CA"),
            clickhouse_ttl_days=_ttl_days(env.get("WAFLOW_CLICKHOUSE_TTL_DAYS", "")),
            flow_token_pattern=env.get("WAFLOW_FLOW_TOKEN_PATTERN", ""),
            pii=env.get("WAFLOW_PII", "keep").strip().lower() or "keep",
            pii_key=secret(env, "WAFLOW_PII_KEY"),
            http_host=env.get("WAFLOW_HTTP_HOST", "127.0.0.1"),
            http_port=_int(env, "WAFLOW_HTTP_PORT", 8080),
            streams_port=_int(env, "WAFLOW_STREAMS_PORT", 8081),
            sink_port=_int(env, "WAFLOW_SINK_PORT", 8082),
            # WAFLOW_METRICS_HOST is the older name of WAFLOW_ADMIN_HOST.
            admin_host=env.get("WAFLOW_ADMIN_HOST") or env.get("WAFLOW_METRICS_HOST", "127.0.0.1"),
            admin_port=_int(env, "WAFLOW_ADMIN_PORT", 0) or None,
            ingest_admin_port=_int(env, "WAFLOW_INGEST_ADMIN_PORT", 8083),
            sink_stall_s=_float(env, "WAFLOW_SINK_STALL_SECONDS", 120.0),
            streams_session_timeout_s=_float(env, "WAFLOW_STREAMS_SESSION_TIMEOUT_S", 10.0),
            streams_instance_id=env.get("WAFLOW_STREAMS_INSTANCE_ID", ""),
            dlq_payload_bytes=_int(env, "WAFLOW_DLQ_PAYLOAD_BYTES", 64 * 1024),
            data_dir=data_dir,
            max_body_bytes=_int(env, "WAFLOW_MAX_BODY_BYTES", 4 * 1024 * 1024),
            produce_timeout_s=_float(env, "WAFLOW_PRODUCE_TIMEOUT_S", 5.0),
            raw_partitions=_int(env, "WAFLOW_RAW_PARTITIONS", 6),
            replication_factor=_int(env, "WAFLOW_REPLICATION_FACTOR", 1),
            raw_retention_days=_int(env, "WAFLOW_RAW_RETENTION_DAYS", 14),
            dedup_window_days=_int(env, "WAFLOW_DEDUP_WINDOW_DAYS", 7),
            claims_cache_mb=_int(env, "WAFLOW_CLAIMS_CACHE_MB", 16),
            sink_batch_rows=_int(env, "WAFLOW_SINK_BATCH_ROWS", 50_000),
            sink_batch_seconds=_float(env, "WAFLOW_SINK_BATCH_SECONDS", 1.0),
            log_level=env.get("WAFLOW_LOG_LEVEL", "INFO").upper(),
            topics=Topics.named(env.get("WAFLOW_TOPIC_PREFIX", "waflow")),
            streams_verify=_bool(env, "WAFLOW_STREAMS_VERIFY", False),
            streams_guarantee=env.get("WAFLOW_STREAMS_GUARANTEE", "at_least_once"),
            tls_cert=_path(env, "WAFLOW_TLS_CERT"),
            tls_key=_path(env, "WAFLOW_TLS_KEY"),
            tls_client_ca=_path(env, "WAFLOW_TLS_CLIENT_CA"),
            tls_client_name=env.get("WAFLOW_TLS_CLIENT_NAME", "").strip(),
            tls_client_crl=_path(env, "WAFLOW_TLS_CLIENT_CRL"),
            tls_reload_s=_float(env, "WAFLOW_TLS_RELOAD_SECONDS", 60.0),
            trusted_proxies=tuple(
                p.strip() for p in env.get("WAFLOW_TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            header_timeout_s=_float(env, "WAFLOW_HEADER_TIMEOUT_S", 10.0),
            body_timeout_s=_float(env, "WAFLOW_BODY_TIMEOUT_S", 30.0),
            max_concurrent_requests=_int(env, "WAFLOW_MAX_CONCURRENT_REQUESTS", 512),
            refusal_log_s=_float(env, "WAFLOW_REFUSAL_LOG_SECONDS", 10.0),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        self.kafka_security.validate()
        hosts = self.kafka_hosts
        if not hosts or any(not re.fullmatch(r"\[?[^\s\]]+\]?:\d{1,5}", h) for h in hosts):
            raise SettingsError(
                f"WAFLOW_KAFKA_BOOTSTRAP={self.kafka_bootstrap!r}: give host:port[,host:port...]"
            )
        scheme = urlsplit(self.clickhouse_url).scheme
        if scheme not in ("http", "https", "chdb"):
            raise SettingsError(
                f"WAFLOW_CLICKHOUSE_URL has scheme {scheme!r}: use "
                "http(s)://user:password@host:port/database or chdb:///absolute/path"
            )
        if scheme == "chdb" and not urlsplit(self.clickhouse_url).path.startswith("/"):
            raise SettingsError(
                "WAFLOW_CLICKHOUSE_URL: chdb:// needs an absolute path (chdb:///abs)"
            )
        if scheme == "chdb" and (self.clickhouse_password or self.clickhouse_ca):
            raise SettingsError(
                "WAFLOW_CLICKHOUSE_PASSWORD / WAFLOW_CLICKHOUSE_CA are for a ClickHouse server: "
                "the embedded engine (chdb://) has neither; unset them or use an http(s):// URL"
            )
        if urlsplit(self.clickhouse_url).password and self.clickhouse_password:
            raise SettingsError(
                "the ClickHouse password is set twice: in WAFLOW_CLICKHOUSE_URL and in "
                "WAFLOW_CLICKHOUSE_PASSWORD(_FILE); keep one"
            )
        if self.clickhouse_ca is not None and not self.clickhouse_ca.is_file():
            raise SettingsError(f"WAFLOW_CLICKHOUSE_CA={self.clickhouse_ca} is not a readable file")
        self._check_registry()
        self._check_policy()
        if self.clickhouse_cluster and not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*", self.clickhouse_cluster
        ):
            raise SettingsError(
                f"WAFLOW_CLICKHOUSE_CLUSTER={self.clickhouse_cluster!r}: give the cluster name "
                "from the server's remote_servers config (letters, digits, '_')"
            )
        if self.clickhouse_cluster and scheme == "chdb":
            raise SettingsError(
                "WAFLOW_CLICKHOUSE_CLUSTER needs a ClickHouse server URL: the embedded engine "
                "(chdb://) is a single node; unset the cluster or point WAFLOW_CLICKHOUSE_URL at "
                "http(s)://..."
            )
        for name, port in (
            ("HTTP", self.http_port),
            ("STREAMS", self.streams_port),
            ("SINK", self.sink_port),
            ("ADMIN", self.admin_port or 1),
            ("INGEST_ADMIN", self.ingest_admin_port),
        ):
            if not 0 < port < 65536:
                raise SettingsError(f"WAFLOW_{name}_PORT={port} is not a TCP port (1-65535)")
        if self.claims_cache_mb < 1:
            raise SettingsError("WAFLOW_CLAIMS_CACHE_MB must be at least 1 (default 16)")
        if self.max_body_bytes < 1024:
            raise SettingsError("WAFLOW_MAX_BODY_BYTES must be at least 1024 (default 4194304)")
        for name, seconds in (
            ("WAFLOW_HEADER_TIMEOUT_S", self.header_timeout_s),
            ("WAFLOW_BODY_TIMEOUT_S", self.body_timeout_s),
            ("WAFLOW_REFUSAL_LOG_SECONDS", self.refusal_log_s),
            ("WAFLOW_SINK_STALL_SECONDS", self.sink_stall_s),
        ):
            if seconds <= 0:
                raise SettingsError(f"{name} must be > 0 seconds")
        if not 6 <= self.streams_session_timeout_s <= 300:
            raise SettingsError(
                "WAFLOW_STREAMS_SESSION_TIMEOUT_S must be 6 to 300 seconds (default 10): it "
                "must exceed two heartbeats (3 s each) and stay within the broker's limits"
            )
        if self.streams_instance_id and not INSTANCE_ID.fullmatch(self.streams_instance_id):
            raise SettingsError(
                f"WAFLOW_STREAMS_INSTANCE_ID={self.streams_instance_id!r}: use 1 to 249 letters, "
                "digits, '.', '_' or '-', unique per worker and stable across its restarts "
                "(a StatefulSet pod's name)"
            )
        if not 1024 <= self.dlq_payload_bytes <= 512 * 1024:
            raise SettingsError(
                "WAFLOW_DLQ_PAYLOAD_BYTES must be 1024 to 524288 (default 65536): a dead "
                "letter's payload prefix must fit a Kafka record"
            )
        if self.max_concurrent_requests < 1:
            raise SettingsError(
                "WAFLOW_MAX_CONCURRENT_REQUESTS must be at least 1 (default 512): requests "
                "beyond it get 503 with Retry-After"
            )
        if self.produce_timeout_s <= 0:
            raise SettingsError("WAFLOW_PRODUCE_TIMEOUT_S must be > 0 seconds (default 5)")
        if not self.kafka_bootstrap.strip():
            raise SettingsError("WAFLOW_KAFKA_BOOTSTRAP is empty: set host:port[,host:port]")
        if self.streams_guarantee not in ("at_least_once", "exactly_once"):
            raise SettingsError(
                f"WAFLOW_STREAMS_GUARANTEE={self.streams_guarantee!r}: use at_least_once "
                "(default) or exactly_once"
            )
        if self.streams_verify and not self.app_secrets:
            raise SettingsError(
                "WAFLOW_STREAMS_VERIFY=true needs WAFLOW_APP_SECRETS: the worker re-checks "
                "each raw record's signature with the same secrets as the ingress"
            )

        self._validate_tls()

    def _validate_tls(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError(
                "set both WAFLOW_TLS_CERT and WAFLOW_TLS_KEY (PEM files) for HTTPS, or neither"
            )
        for name, path in (
            ("WAFLOW_TLS_CERT", self.tls_cert),
            ("WAFLOW_TLS_KEY", self.tls_key),
            ("WAFLOW_TLS_CLIENT_CA", self.tls_client_ca),
            ("WAFLOW_TLS_CLIENT_CRL", self.tls_client_crl),
        ):
            if path is not None and not path.is_file():
                raise SettingsError(f"{name}={path} is not a readable file")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise SettingsError(
                "WAFLOW_TLS_CLIENT_CA (mutual TLS) needs HTTPS: set WAFLOW_TLS_CERT and _KEY"
            )
        if bool(self.tls_client_ca) != bool(self.tls_client_name):
            raise SettingsError(
                "mutual TLS needs both WAFLOW_TLS_CLIENT_CA and WAFLOW_TLS_CLIENT_NAME: a CA "
                "alone would accept any certificate that CA ever issued"
            )
        if self.tls_client_crl is not None and self.tls_client_ca is None:
            raise SettingsError(
                "WAFLOW_TLS_CLIENT_CRL revokes client certificates of mutual TLS: set "
                "WAFLOW_TLS_CLIENT_CA and WAFLOW_TLS_CLIENT_NAME too, or unset it"
            )
        if self.tls_reload_s <= 0:
            raise SettingsError("WAFLOW_TLS_RELOAD_SECONDS must be > 0 (default 60)")

    def admin_port_of(self, stage: str) -> int:
        """Where a stage serves /metrics, /healthz and /readyz (and the sink /query):
        WAFLOW_ADMIN_PORT when set (one stage per container), else the stage's own port
        (WAFLOW_INGEST_ADMIN_PORT, WAFLOW_STREAMS_PORT, WAFLOW_SINK_PORT) so the three can
        share a host."""
        if self.admin_port:
            return self.admin_port
        return {"ingest": self.ingest_admin_port, "streams": self.streams_port}.get(
            stage, self.sink_port
        )

    @property
    def kafka_hosts(self) -> tuple[str, ...]:
        """Every host:port of WAFLOW_KAFKA_BOOTSTRAP, for every client."""
        return tuple(h.strip() for h in self.kafka_bootstrap.split(",") if h.strip())

    def require_ingress_secrets(self) -> None:
        """Fail closed: an ingress without a secret would accept anything."""
        if not self.app_secrets:
            raise SettingsError(
                "WAFLOW_APP_SECRETS is empty: the ingress refuses to start without a secret. "
                "Set it to your Meta app secret(s), comma-separated, optionally labelled: "
                "WAFLOW_APP_SECRETS='shop=abc123,support=def456'"
            )
        if not self.verify_token:
            raise SettingsError(
                "WAFLOW_VERIFY_TOKEN is empty: set it to the Verify Token you enter in the "
                "App Dashboard's webhook configuration"
            )


def parse_app_secrets(raw: str) -> tuple[AppSecret, ...]:
    """Parse `label=secret,secret2`; unlabelled secrets are named app1, app2, ... by position."""
    secrets: list[AppSecret] = []
    for position, item in enumerate((p.strip() for p in raw.split(",")), start=1):
        if not item:
            continue
        label, sep, secret = item.partition("=")
        if not sep:
            label, secret = f"app{position}", item
        if not label or not secret:
            raise SettingsError(
                f"WAFLOW_APP_SECRETS item {position} is empty on one side of '=': "
                "write label=secret or just secret"
            )
        secrets.append(AppSecret(label=label.strip(), secret=secret.strip().encode()))
    labels = [s.label for s in secrets]
    if len(set(labels)) != len(labels):
        raise SettingsError("WAFLOW_APP_SECRETS has a label twice: give each app its own label")
    return tuple(secrets)


def secret(env: Mapping[str, str], name: str) -> str:
    """`name` from the environment, or the contents of the file `<name>_FILE` names (the Docker
    and Kubernetes secrets convention; one trailing newline dropped). Both set is an error."""
    value = env.get(name, "")
    file = env.get(f"{name}_FILE", "").strip()
    if value and file:
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    if not file:
        return value
    try:
        text = Path(file).read_text()
    except OSError as exc:
        raise SettingsError(f"{name}_FILE={file} cannot be read: {exc.strerror}") from exc
    return text.removesuffix("\n").removesuffix("\r")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).absolute() if raw else None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")


def _ttl_days(value: str) -> tuple[tuple[str, int], ...]:
    """`table=days,...` over the defaults of catalog.RETENTION."""
    days = {table: default for table, (_, default) in catalog.RETENTION.items()}
    for part in filter(None, (p.strip() for p in value.split(","))):
        table, _, number = part.partition("=")
        table = table.strip()
        if table not in days:
            known = ", ".join(days)
            raise SettingsError(f"WAFLOW_CLICKHOUSE_TTL_DAYS: no table {table!r} (one of {known})")
        try:
            days[table] = int(number)
        except ValueError as exc:
            raise SettingsError(
                f"WAFLOW_CLICKHOUSE_TTL_DAYS: {part!r} is not table=days (days a whole number)"
            ) from exc
        if days[table] < 0:
            raise SettingsError(f"WAFLOW_CLICKHOUSE_TTL_DAYS: {part!r}: days cannot be negative")
    return tuple(days.items())


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _parse(env, name, default, int, "a whole number")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parse(env, name, default, float, "a number")


def _parse(env: Mapping[str, str], name: str, default: T, kind: Callable[[str], T], noun: str) -> T:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} is not {noun} (default {default})") from exc
