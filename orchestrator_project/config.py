"""Typed readers for environment variables.

Settings read the environment only through these helpers, so a bad value stops start-up with a message
that names the variable instead of surfacing later as a confusing runtime error.
"""

import ipaddress
import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name):
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name, default=None):
    value = _raw(name)
    return default if value in (None, "") else value


def env_choice(name, default, choices):
    """One of `choices` (case as given for the choices)."""
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_rate(name, default):
    """A rate in DRF's syntax, "N/period" with the period starting s, m, h or d ("6000/min")."""
    value = env_str(name, default)
    count, _, period = value.partition("/")
    if not (count.isdigit() and int(count) > 0 and period[:1] in ("s", "m", "h", "d")):
        raise ImproperlyConfigured(
            f"{name} must be a rate like 6000/min (a positive count per s, min, hour or day), got {value!r}"
        )
    return value


def env_bool(name, default=False):
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name, default, *, minimum=None, maximum=None):
    value = _raw(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {number}")
    return number


def env_float(name, default, *, minimum=None):
    value = _raw(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {number}")
    return number


def env_list(name, default=()):
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_map(name, *, values):
    """`key=value,key=value` pairs, each value one of `values` ({key: value}; empty when unset)."""
    found = {}
    for item in env_list(name, []):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ImproperlyConfigured(f"{name} must be key=value pairs separated by commas, got {item!r}")
        if value not in values:
            raise ImproperlyConfigured(f"{name}: {key} must map to one of {', '.join(values)}, got {value!r}")
        found[key] = value
    return found


def env_url(name, default=None, *, schemes=("http", "https")):
    """A URL with one of `schemes` and a host, or None when unset."""
    value = env_str(name, default)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL ({exc}): {value!r}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name} must be a URL with scheme {'/'.join(schemes)} and a host, got {value!r}"
        )
    return value


def env_networks(name, default):
    """A comma-separated list of CIDRs, parsed into ip_network objects."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name} contains an invalid network: {item!r}") from None
    return networks
