from pathlib import Path

import pytest

from infra.core.errors import SettingsError
from infra.core.settings import Settings, parse_app_secrets


def test_secrets_labelled_and_positional() -> None:
    secrets = parse_app_secrets("shop=abc, def ,")
    assert [(s.label, s.secret) for s in secrets] == [("shop", b"abc"), ("app2", b"def")]


def test_secret_never_in_repr() -> None:
    settings = Settings.from_env(
        {"WAFLOW_APP_SECRETS": "shop=topsecret", "WAFLOW_VERIFY_TOKEN": "tok-hidden"}
    )
    assert "topsecret" not in repr(settings)
    assert "tok-hidden" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAFLOW_HTTP_PORT": "eighty"}, "WAFLOW_HTTP_PORT"),
        ({"WAFLOW_HTTP_PORT": "70000"}, "not a TCP port"),
        ({"WAFLOW_CLICKHOUSE_URL": "mysql://x"}, "chdb:///absolute/path"),
        ({"WAFLOW_APP_SECRETS": "a=x,a=y"}, "label twice"),
        ({"WAFLOW_PRODUCE_TIMEOUT_S": "0"}, "WAFLOW_PRODUCE_TIMEOUT_S"),
        ({"WAFLOW_CLAIMS_CACHE_MB": "0"}, "WAFLOW_CLAIMS_CACHE_MB must be at least 1"),
        ({"WAFLOW_TOPIC_PREFIX": "a b"}, "WAFLOW_TOPIC_PREFIX"),
        ({"WAFLOW_STREAMS_GUARANTEE": "maybe"}, "at_least_once"),
        ({"WAFLOW_STREAMS_VERIFY": "sure"}, "not a boolean"),
        ({"WAFLOW_STREAMS_INSTANCE_ID": "pod 0"}, "stable across its restarts"),
        ({"WAFLOW_STREAMS_VERIFY": "true"}, "needs WAFLOW_APP_SECRETS"),
        ({"WAFLOW_KAFKA_BOOTSTRAP": "broker-without-port"}, "host:port"),
        ({"WAFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SASL_SSL"),
        ({"WAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "WAFLOW_KAFKA_SASL_MECHANISM"),
        (
            {"WAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "WAFLOW_KAFKA_SASL_MECHANISM": "PLAIN"},
            "needs WAFLOW_KAFKA_SASL_USERNAME",
        ),
        ({"WAFLOW_KAFKA_SASL_USERNAME": "u"}, "use SASL_SSL"),
        ({"WAFLOW_KAFKA_SSL_CA": "/etc/hostname"}, "use SSL or SASL_SSL"),
        (
            {"WAFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "WAFLOW_KAFKA_SSL_CERT": "/etc/hostname"},
            "both WAFLOW_KAFKA_SSL_CERT and WAFLOW_KAFKA_SSL_KEY",
        ),
        ({"WAFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "WAFLOW_KAFKA_SSL_CA": "/no"}, "readable"),
        ({"WAFLOW_CLICKHOUSE_PASSWORD": "p"}, "embedded engine"),
        (
            {"WAFLOW_CLICKHOUSE_URL": "https://u:p@h/db", "WAFLOW_CLICKHOUSE_PASSWORD": "q"},
            "set twice",
        ),
        ({"WAFLOW_VERIFY_TOKEN": "a", "WAFLOW_VERIFY_TOKEN_FILE": "/etc/hostname"}, "not both"),
        ({"WAFLOW_APP_SECRETS_FILE": "/nonexistent/secret"}, "cannot be read"),
    ],
)
def test_invalid_settings_say_what_and_how(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_ingress_fails_closed_without_secret() -> None:
    with pytest.raises(SettingsError, match="refuses to start"):
        Settings.from_env({}).require_ingress_secrets()


def test_defaults() -> None:
    s = Settings.from_env({"WAFLOW_DATA_DIR": "/tmp/x"})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.clickhouse_url == "chdb:///tmp/x/clickhouse"
    assert s.topics.raw == "waflow.webhooks.raw"


def test_topic_prefix_names_every_topic() -> None:
    t = Settings.from_env({"WAFLOW_TOPIC_PREFIX": "staging"}).topics
    assert (t.raw, t.responses, t.items, t.prefix) == (
        "staging.webhooks.raw",
        "staging.flows.responses",
        "staging.streams.items",
        "staging",
    )
    assert Settings.from_env({}).topics == Settings.from_env({}).topics.named("waflow")


def test_broker_format_passes_a_dash_leading_cluster_id_as_one_token() -> None:
    """Regression: `-t -hsIQi...` made Kafka's storage tool refuse to format the node."""
    from pathlib import Path

    from infra.core.broker import format_command

    cmd = format_command("lib/*", "-hsIQi_URbSggfJQqgWYaA", Path("/n/server.properties"))
    assert "--cluster-id=-hsIQi_URbSggfJQqgWYaA" in cmd
    assert "-t" not in cmd


def test_the_configuration_reference_names_every_setting() -> None:
    import re

    from tests.conftest import ROOT

    read = set(
        re.findall(r'"(WAFLOW_[A-Z_]+)"', (ROOT / "infra" / "core" / "settings.py").read_text())
    )
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(WAFLOW_[A-Z_]+)`", reference))
    assert read and not read - documented, (
        f"missing from docs/configuration.md: {read - documented}"
    )


def test_every_secret_reads_from_its_file(tmp_path: Path) -> None:
    files = {
        "WAFLOW_APP_SECRETS": "shop=from-file\n",
        "WAFLOW_VERIFY_TOKEN": "token-from-file\n",
        "WAFLOW_KAFKA_SASL_PASSWORD": "kafka-from-file\r\n",
        "WAFLOW_CLICKHOUSE_PASSWORD": "ch-from-file",
    }
    env = {
        "WAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "WAFLOW_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "WAFLOW_KAFKA_SASL_USERNAME": "waflow",
        "WAFLOW_CLICKHOUSE_URL": "https://waflow@ch.example:8443/analytics",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        env[f"{name}_FILE"] = str(tmp_path / name)
    s = Settings.from_env(env)
    assert [(a.label, a.secret) for a in s.app_secrets] == [("shop", b"from-file")]
    assert s.verify_token == "token-from-file"
    assert s.kafka_security.sasl_password == "kafka-from-file"
    assert s.kafka_security.sasl_mechanism == "SCRAM-SHA-512"
    assert s.clickhouse_password == "ch-from-file"
    for secret in ("from-file", "token-from-file", "kafka-from-file", "ch-from-file"):
        assert secret not in repr(s)


def test_a_password_in_the_clickhouse_url_never_prints() -> None:
    s = Settings.from_env({"WAFLOW_CLICKHOUSE_URL": "https://u:hunter2@ch.example:8443/db"})
    assert "hunter2" not in repr(s)


def test_every_bootstrap_host_is_kept() -> None:
    s = Settings.from_env({"WAFLOW_KAFKA_BOOTSTRAP": "b1:9092, b2:9092,[::1]:9093"})
    assert s.kafka_hosts == ("b1:9092", "b2:9092", "[::1]:9093")
