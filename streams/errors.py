"""Why an item could not be typed. The reason code lands in the dead letter and in metrics."""


class StreamError(Exception):
    """Base class for stream-stage errors."""

    reason = "error"


class PayloadError(StreamError):
    """The delivery, or one item of it, does not have the shape the platform documents."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class SignatureMismatch(StreamError):
    """A raw record's signature does not verify with WAFLOW_APP_SECRETS: a dead letter."""
