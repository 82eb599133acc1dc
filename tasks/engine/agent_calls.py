"""One call to an agent: `POST {endpoint}/execute`, signed, and what its answer means.

The protocol is documented for agent authors in docs/agent-protocol.md.
"""

import asyncio
import email.utils
import json
import time

import aiohttp
from django.conf import settings

from orchestrator_project import egress
from orchestrator_project.signing import signed_headers

from .outcome import Outcome, OutcomeKind

# 408, 425 and 429 are the client errors that mean "try again later", not "this request is wrong".
RETRYABLE_CLIENT_ERRORS = {408, 425, 429}
ERROR_TEXT_LIMIT = 2000


def parse_retry_after(value):
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from(response):
    try:
        parsed = response.json()
    except ValueError:
        return {
            "status_code": response.status_code,
            "message": response.body[:ERROR_TEXT_LIMIT].decode("utf-8", "replace"),
        }
    if isinstance(parsed, dict) and "error" in parsed:
        return {"status_code": response.status_code, "message": parsed["error"]}
    return {"status_code": response.status_code, "message": parsed}


def classify(spec, response, latency_ms):
    """Turn an agent's HTTP answer into an Outcome, following the dispatch contract."""
    base = {
        "task_id": spec.task_id,
        "attempt": spec.attempt,
        "agent_id": spec.agent_id,
        "status_code": response.status_code,
        "latency_ms": latency_ms,
    }
    code = response.status_code
    if code == 202:
        return Outcome(kind=OutcomeKind.ACCEPTED, call_outcome="accepted", **base)
    if 200 <= code < 300:
        # Postgres cannot store NUL characters in JSON; such a result cannot be kept as sent.
        if b"\\u0000" in response.body:
            return Outcome(
                kind=OutcomeKind.FAIL,
                reason="agent result contains NUL characters",
                call_outcome="invalid",
                **base,
            )
        try:
            parsed = response.json()
        except ValueError:
            return Outcome(
                kind=OutcomeKind.FAIL,
                reason="agent answered with invalid JSON",
                call_outcome="invalid",
                **base,
            )
        result = parsed.get("result") if isinstance(parsed, dict) and "result" in parsed else parsed
        return Outcome(kind=OutcomeKind.COMPLETED, result=result, call_outcome="success", **base)
    retry_after = parse_retry_after(response.headers.get("retry-after")) if code in (429, 503) else None
    if code in RETRYABLE_CLIENT_ERRORS or code >= 500:
        return Outcome(
            kind=OutcomeKind.RETRY,
            reason=f"agent answered HTTP {code}",
            error=_error_from(response),
            retry_after=retry_after,
            counts_for_circuit=code >= 500,
            call_outcome="error",
            **base,
        )
    if 300 <= code < 400:
        return Outcome(
            kind=OutcomeKind.FAIL,
            reason=f"agent answered a redirect (HTTP {code}); redirects are not followed",
            call_outcome="rejected",
            **base,
        )
    return Outcome(
        kind=OutcomeKind.FAIL,
        reason=f"agent rejected the task (HTTP {code})",
        error=_error_from(response),
        retire_agent=code == 410,
        counts_for_circuit=False,
        call_outcome="rejected",
        **base,
    )


async def call(client, spec):
    """Call the agent once and return the Outcome; never raises for anything the agent did."""
    body = json.dumps(spec.body, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": f"agent-orchestrator/{settings.VERSION}",
        "idempotency-key": spec.idempotency_key,
        **signed_headers(spec.signing_secret, body),
    }
    base = {"task_id": spec.task_id, "attempt": spec.attempt, "agent_id": spec.agent_id}
    started = time.monotonic()
    try:
        # The task's timeout bounds the whole call, however the agent trickles its answer (tests/chaos).
        async with asyncio.timeout(spec.timeout_seconds):
            response = await egress.request(
                client,
                "POST",
                f"{spec.endpoint.rstrip('/')}/execute",
                headers=headers,
                content=body,
                timeout=spec.timeout_seconds,
                connect_timeout=min(settings.AGENT_CONNECT_TIMEOUT, spec.timeout_seconds),
            )
    except egress.EgressRefused as exc:
        return Outcome(
            kind=OutcomeKind.FAIL,
            reason=f"refused to call the agent: {exc}",
            counts_for_circuit=False,
            call_outcome="refused",
            **base,
        )
    except egress.ResponseTooLarge as exc:
        return Outcome(
            kind=OutcomeKind.RETRY,
            reason=str(exc),
            call_outcome="too_large",
            latency_ms=(time.monotonic() - started) * 1000,
            **base,
        )
    except TimeoutError:  # before OSError, of which it is one (aiohttp's timeouts are TimeoutErrors too)
        return Outcome(
            kind=OutcomeKind.RETRY,
            reason=f"agent did not answer within {spec.timeout_seconds} s",
            call_outcome="timeout",
            latency_ms=(time.monotonic() - started) * 1000,
            **base,
        )
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(
            kind=OutcomeKind.RETRY,
            reason=f"could not reach the agent: {type(exc).__name__}: {exc}"[:500],
            call_outcome="connection_error",
            **base,
        )
    return classify(spec, response, (time.monotonic() - started) * 1000)
