from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from . import errors


class Conflict(exceptions.APIException):
    """409: an illegal state change (what a domain Conflict becomes on the wire)."""

    status_code = 409
    default_detail = "The resource is not in a state that allows this."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"


def _as_api_exception(exc):
    """The DRF exception for a domain error, or None if `exc` is not one."""
    if isinstance(exc, errors.NotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, errors.Conflict):
        return Conflict(exc.message)
    if isinstance(exc, errors.InvalidInput):
        return exceptions.ValidationError(exc.field_errors)
    if isinstance(exc, errors.RateLimited):
        return exceptions.Throttled(wait=exc.wait)
    if isinstance(exc, errors.DomainError):
        return exceptions.ValidationError({"detail": exc.message})
    return None


def exception_handler(exc, context):
    """DRF's handler, taught the domain errors of the services and two Django errors.

    400 field errors, 404 unknown, 409 illegal state change, 413 too large, 429 throttled.
    """
    exc = _as_api_exception(exc) or exc
    if isinstance(exc, RequestDataTooBig):
        # Django would answer its HTML "Bad Request (400)" page; say what is wrong, in JSON.
        exc = PayloadTooLarge(f"The request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    if isinstance(exc, DjangoValidationError):
        # Always an object: a bare list of messages (a malformed UUID, say) becomes `detail`.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": " ".join(exc.messages)}
        )
    return drf_exception_handler(exc, context)
