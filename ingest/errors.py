"""Why the ingress refused or could not keep a request. Each maps to one HTTP answer."""

from infra.core.errors import SettingsError


class IngestError(Exception):
    """Base class for ingress errors."""

    status = 500
    outcome = "error"


class SignatureError(IngestError):
    """Missing, malformed or wrong X-Hub-Signature-256: 401, nothing written."""

    status = 401
    outcome = "bad_signature"


class HandshakeError(IngestError):
    """Subscription handshake with the wrong mode or verify token: 403."""

    status = 403
    outcome = "bad_handshake"


class TooLargeError(IngestError):
    """Body over WAFLOW_MAX_BODY_BYTES: 413."""

    status = 413
    outcome = "too_large"


class SlowBodyError(IngestError):
    """The body did not arrive within WAFLOW_BODY_TIMEOUT_S: 408, nothing written."""

    status = 408
    outcome = "slow_body"


class BusyError(IngestError):
    """More than WAFLOW_MAX_CONCURRENT_REQUESTS requests in flight: 503 with Retry-After."""

    status = 503
    outcome = "busy"


class BrokerUnavailableError(IngestError):
    """The write was not acknowledged in time: 503, so the platform retries."""

    status = 503
    outcome = "broker_unavailable"


class TlsConfigError(SettingsError):
    """The certificate, key or client CA files do not load: the ingress does not start."""
