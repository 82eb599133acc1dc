"""Domain errors: what services raise when a request cannot be carried out.

Services know nothing of HTTP; one exception handler (exceptions.py) turns these into responses, and
the admin shows their message. Each carries a message written for the person who asked.
"""


class DomainError(Exception):
    """Base of everything a service refuses to do."""

    def __init__(self, message=""):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    default_message = "The request cannot be carried out."


class NotFound(DomainError):
    """The thing asked for does not exist (or is not the caller's to see)."""

    default_message = "Not found."


class Conflict(DomainError):
    """An illegal state change: the request is valid, the thing is not in a state that allows it."""

    default_message = "The resource is not in a state that allows this."


class InvalidInput(DomainError):
    """Input that validation could only judge inside the service, keyed by field."""

    def __init__(self, field_errors):
        self.field_errors = {field: list(messages) for field, messages in field_errors.items()}
        super().__init__("; ".join(f"{field}: {' '.join(m)}" for field, m in self.field_errors.items()))


class RateLimited(DomainError):
    """Too many requests; `wait` seconds until the next one is let through."""

    default_message = "Request was throttled."

    def __init__(self, wait):
        super().__init__()
        self.wait = wait
