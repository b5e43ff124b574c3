"""Schema errors: a record that does not fit, or bytes no known schema wrote."""


class SchemaError(Exception):
    """Base class for schema errors."""


class EncodeError(SchemaError):
    """A record does not fit its schema (wraps fastavro's error)."""


class DecodeError(SchemaError):
    """Bytes are not single-object Avro of a schema we know. `reason` is the dead letter's:
    `unknown_schema` when the writer schema (fingerprint or registry id) is not one of ours."""

    def __init__(self, detail: str, reason: str = "undecodable") -> None:
        super().__init__(detail)
        self.reason = reason
