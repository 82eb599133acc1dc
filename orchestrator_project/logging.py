"""Structured logs: one JSON object per line, carrying the id of the request or task being worked on.

The ids live in a context variable, so they follow the work rather than the thread: a request's id is
set by `RequestIdMiddleware` for everything its view logs, and the engine wraps the work on one task in
`log_context(task_id=...)`. Each asyncio task and each thread sees only its own ids.

`LOG_FORMAT` picks the formatter (settings.py): `json` for log collectors (the default with DEBUG off),
`plain` for a terminal. Both show the same context fields.
"""

import contextlib
import contextvars
import json
import logging
import re
import time
from datetime import UTC, datetime
from types import MappingProxyType

from celery.app import trace

from orchestrator_project import ids

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into logs and headers, so it must be short and printable; anything else is
# replaced by a fresh id rather than trusted.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

# The mapping in the variable is replaced, never changed in place: a copied context must not see changes.
_context = contextvars.ContextVar("orchestrator_log_context", default=MappingProxyType({}))
access_logger = logging.getLogger("orchestrator.access")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth keeping,
# except Uvicorn's `color_message`: the message again, with a terminal's colour codes.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


@contextlib.contextmanager
def log_context(**fields):
    """Add fields (task_id=..., attempt=...) to every log line written inside the block."""
    added = {key: str(value) for key, value in fields.items() if value is not None}
    token = _context.set(MappingProxyType({**_context.get(), **added}))
    try:
        yield
    finally:
        _context.reset(token)


def current_context():
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (as attributes), for whichever formatter follows."""

    def filter(self, record):
        context = _context.get()
        for key, value in context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        record.log_context = context
        return True


class QuietCeleryJobs(logging.Filter):
    """Drops Celery's lines per job: beat sending it, a worker receiving it and its success.

    A filter rather than a logger level: beat's start-up line ("beat: Starting..."), which the process
    supervisors wait for, comes from the same logger at the same level as its sends, and Celery's worker
    decides once, at start, whether its loggers are enabled for INFO.
    """

    JOB_LINES = frozenset({"Scheduler: Sending due task %s (%s)", trace.LOG_RECEIVED, trace.LOG_SUCCESS})

    def filter(self, record):
        return record.msg not in self.JOB_LINES


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "log_context", None) or _context.get())
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key != "log_context" and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # default=str: extras may be objects (Django's `request`); a log line must never fail to render.
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """The usual one-line format, with the context appended as key=value pairs."""

    def __init__(self, fmt="%(asctime)s %(levelname)s %(name)s %(message)s", **kwargs):
        super().__init__(fmt, **kwargs)

    def format(self, record):
        line = super().format(record)
        context = getattr(record, "log_context", None) or _context.get()
        if context:
            line += " [" + " ".join(f"{key}={value}" for key, value in context.items()) + "]"
        return line


class RequestIdMiddleware:
    """Gives every request an id: the caller's `X-Request-ID` when it is sane, else a new one.

    The id is in the log context while the request is handled, in the response's `X-Request-ID`
    header, and in one access line per request (logger `orchestrator.access`). Put it first in
    MIDDLEWARE so that everything after it logs with the id.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if _VALID_REQUEST_ID.fullmatch(offered) else ids.uuid4().hex
        request.request_id = request_id
        with log_context(request_id=request_id):
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            access_logger.info(
                '"%s %s" %s',
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
        return response
