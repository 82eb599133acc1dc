from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    """An illegal state change: the request is valid but the resource is not in a state that allows it."""

    status_code = 409
    default_detail = "The resource is not in a state that allows this."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        # Django would answer its HTML "Bad Request (400)" page; say what is wrong, in JSON.
        exc = PayloadTooLarge(f"The request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    if isinstance(exc, DjangoValidationError):
        # Always an object: a bare list of messages (a malformed UUID, say) becomes `detail`.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": " ".join(exc.messages)}
        )
    return drf_exception_handler(exc, context)
