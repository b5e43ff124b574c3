"""The /query contract's pure parts: host names, the credential, the engine-parse guard."""

from __future__ import annotations

import pytest

from sink.query import authorized, external_sources, file_clause, loopback_host


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8082", True),
        ("localhost", True),
        ("LOCALHOST:8082", True),
        ("[::1]:8082", True),
        ("[::1]", True),
        ("127.0.0.1.nip.io:8082", False),
        ("localhost.attacker.example", False),
        ("attacker.example:8082", False),
        ("[::1", False),
        ("", False),
        (None, False),
    ],
)
def test_only_loopback_names_are_hosts(host: str | None, ok: bool) -> None:
    assert loopback_host(host) is ok


def test_the_token_is_a_bearer_credential_compared_whole() -> None:
    assert authorized("Bearer abc", "abc")
    assert authorized("bearer abc", "abc")
    assert not authorized("Bearer ab", "abc")
    assert not authorized("Bearer abcd", "abc")
    assert not authorized("abc", "abc")
    assert not authorized(None, "abc")


def test_external_sources_are_found_in_the_engines_ast() -> None:
    ast = [
        "SelectWithUnionQuery (children 1)",
        "      Function file (children 1)",
        "      Function count (children 1)",
        "  FunctionWithKeyValueArguments  mysql (children 1)",
        "  Function URL (children 1)",
        "   TableIdentifier waflow.file",
    ]
    assert external_sources(ast) == {"file", "mysql", "URL"}
    assert external_sources(["Function sum", "Identifier file"]) == set()


def test_file_clauses_are_found_in_the_canonical_text() -> None:
    assert file_clause("SELECT 1\nINTO OUTFILE '/tmp/x'")
    assert file_clause("INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV")
    assert not file_clause("SELECT infile, outfile FROM t")


def test_the_output_format_is_read_from_the_canonical_statement() -> None:
    from sink.query import output_format

    assert output_format("SELECT 1\nFORMAT CSV") == "CSV"
    assert output_format("SELECT 'FORMAT CSV'") is None
    assert output_format("INSERT INTO t (a) FORMAT Values") is None  # the input's format
