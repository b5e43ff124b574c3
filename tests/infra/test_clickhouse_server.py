"""How a ClickHouse server is reached: parsed from the URL and the password settings. No server
runs here, so this is what is ours to test: parsing, precedence and that no password prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.core.clickhouse import server
from infra.core.errors import ClickHouseError


def test_https_url_with_user_password_and_database() -> None:
    s = server("https://analyst:p%40ss@ch.example.com:8443/waflow")
    assert (s.host, s.port, s.username, s.password, s.secure) == (
        "ch.example.com",
        8443,
        "analyst",
        "p@ss",
        True,
    )
    assert "p@ss" not in repr(s) and "p@ss" not in s.safe_url


def test_password_and_ca_from_settings_and_default_ports() -> None:
    s = server("https://analyst@ch.example.com/waflow", "from-file", Path("/etc/ca.pem"))
    assert (s.port, s.password, s.ca_cert) == (8443, "from-file", "/etc/ca.pem")
    assert server("http://ch.example.com").port == 8123
    assert server("http://ch.example.com").username == "default"


def test_an_unreachable_server_error_carries_no_password() -> None:
    from infra.core.clickhouse import connect

    with pytest.raises(ClickHouseError) as caught:
        connect("http://u:hunter2@127.0.0.1:9/db", ca=None)
    assert "hunter2" not in str(caught.value) and "127.0.0.1:9" in str(caught.value)
