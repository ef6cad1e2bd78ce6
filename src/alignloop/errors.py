"""Domain errors. Every layer raises these; the server maps them to HTTP, the CLI to messages.

Each error names the field at fault (where there is one) and says how to fix it.
"""

from __future__ import annotations


class AlignloopError(Exception):
    """Base class: a problem the caller can fix. `status` is the HTTP status the server uses."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(AlignloopError):
    status = 422
    code = "invalid_value"


class NotFound(AlignloopError):
    status = 404
    code = "not_found"


class Conflict(AlignloopError):
    status = 409
    code = "conflict"


class Unauthorized(AlignloopError):
    status = 401
    code = "unauthorized"


class Forbidden(AlignloopError):
    status = 403
    code = "forbidden"


class RateLimited(AlignloopError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(AlignloopError):
    status = 413
    code = "payload_too_large"


class ConfigError(AlignloopError):
    code = "invalid_config"
