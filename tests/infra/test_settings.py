import pytest

from infra.errors import SettingsError
from infra.settings import Settings, parse_app_secrets


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
        ({"WAFLOW_STREAMS_VERIFY": "true"}, "needs WAFLOW_APP_SECRETS"),
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

    from infra.broker import format_command

    cmd = format_command("lib/*", "-hsIQi_URbSggfJQqgWYaA", Path("/n/server.properties"))
    assert "--cluster-id=-hsIQi_URbSggfJQqgWYaA" in cmd
    assert "-t" not in cmd


def test_readme_configuration_reference_names_every_setting() -> None:
    import re

    from tests.conftest import ROOT

    read = set(re.findall(r'"(WAFLOW_[A-Z_]+)"', (ROOT / "infra" / "settings.py").read_text()))
    documented = set(re.findall(r"`(WAFLOW_[A-Z_]+)`", (ROOT / "README.md").read_text()))
    assert read and not read - documented, f"settings missing from README: {read - documented}"
