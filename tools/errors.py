"""Domain errors. Each carries its HTTP status; the API renders them as problem details."""

from __future__ import annotations


class AppError(Exception):
    status_code = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, extra: dict[str, object] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}  # response headers (e.g. Retry-After)


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(AppError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(AppError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class PaymentRequired(AppError):
    status_code = 402
    title = "Payment required"
    type_slug = "payment-required"


class Unprocessable(AppError):
    status_code = 422
    title = "Unprocessable content"
    type_slug = "validation-error"


class PolicyDenied(AppError):
    status_code = 403
    title = "Denied by policy"
    type_slug = "policy-denied"


class ApprovalRequired(AppError):
    status_code = 409
    title = "Approval required"
    type_slug = "approval-required"


class RateLimited(AppError):
    status_code = 429
    title = "Too many requests"
    type_slug = "rate-limited"
