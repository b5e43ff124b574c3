"""Every Kafka client's connection settings, and the ACL list, from one place."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust

from infra.core import kafka
from tests.conftest import make_settings
from tests.ingest.certs import Authority


def test_plaintext_is_every_host_and_nothing_else() -> None:
    s = make_settings(WAFLOW_KAFKA_BOOTSTRAP="b1:9092,b2:9092")
    assert kafka.client(s) == {
        "bootstrap_servers": ["b1:9092", "b2:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.faust_broker(s) == ["kafka://b1:9092", "kafka://b2:9092"]
    assert kafka.faust_credentials(s) is None


def test_sasl_ssl_with_a_ca_and_a_client_certificate(tmp_path: Path) -> None:
    ca = Authority("kafka-ca", tmp_path)
    me = ca.issue("waflow", client=True, stem="me")
    s = make_settings(
        WAFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        WAFLOW_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        WAFLOW_KAFKA_SASL_USERNAME="waflow",
        WAFLOW_KAFKA_SASL_PASSWORD="pw",
        WAFLOW_KAFKA_SSL_CA=str(ca.pem),
        WAFLOW_KAFKA_SSL_CERT=str(me.cert),
        WAFLOW_KAFKA_SSL_KEY=str(me.key),
    )
    conf = kafka.client(s)
    assert conf["security_protocol"] == "SASL_SSL"
    assert (conf["sasl_mechanism"], conf["sasl_plain_username"]) == ("SCRAM-SHA-512", "waflow")
    ctx = conf["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "kafka-ca"),),)]
    credentials = kafka.faust_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert "pw" not in repr(credentials)


def test_ssl_without_sasl_is_faust_ssl_credentials() -> None:
    s = make_settings(WAFLOW_KAFKA_SECURITY_PROTOCOL="SSL")
    assert isinstance(kafka.faust_credentials(s), faust.SSLCredentials)
    assert "sasl_mechanism" not in kafka.client(s)


def test_acls_cover_only_waflows_own_prefixes() -> None:
    s = make_settings(WAFLOW_TOPIC_PREFIX="acme")
    names = {(a.kind, a.name, a.prefixed) for a in kafka.acls(s)}
    assert names == {("topic", "acme.", True), ("topic", "acme-", True), ("group", "acme-", True)}
    line = kafka.acls(s)[2].command("User:svc")
    assert line.endswith(
        "--allow-principal User:svc --operation Read --operation Describe "
        "--group acme- --resource-pattern-type prefixed"
    )
    exactly_once = make_settings(WAFLOW_STREAMS_GUARANTEE="exactly_once")
    assert any(a.kind == "transactional-id" for a in kafka.acls(exactly_once))
