"""Schema errors: a record that does not fit, or bytes no known schema wrote."""


class SchemaError(Exception):
    """Base class for schema errors."""


class EncodeError(SchemaError):
    """A record does not fit its schema (wraps fastavro's error)."""


class DecodeError(SchemaError):
    """Bytes are not single-object Avro of a schema we know."""
