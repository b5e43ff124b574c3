"""Errors of the infrastructure layer: each says what is wrong and how to fix it."""


class InfraError(Exception):
    """Base class for waflow infrastructure errors."""


class SettingsError(InfraError):
    """A WAFLOW_* setting is missing or invalid; the message names it and the fix."""


class BrokerError(InfraError):
    """The Kafka broker could not be fetched, started or reached."""


class ClickHouseError(InfraError):
    """ClickHouse could not be reached, or a migration failed."""
