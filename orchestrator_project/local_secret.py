"""The SECRET_KEY of a single-machine install (no DATABASE_URL, no SECRET_KEY): made once, kept in var/.

Every process of `make run` (the supervisor, each web process, the worker, beat, manage.py) reads the same
file, so sessions and signatures survive restarts. The first process creates it; the others may start at
the same moment, so the file appears complete or not at all (written aside, then linked into place).
"""

import os
import secrets
import stat
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

MIN_LENGTH = 50


def load_or_create(path):
    path = Path(path)
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # A key others can read is a key others can forge sessions with; do not quietly go on using it.
        raise ImproperlyConfigured(
            f"{path} holds the secret key but is readable by others (mode {mode:o}): run `chmod 600 {path}`, "
            "or delete it to have a new key made (everyone is logged out)"
        )
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise ImproperlyConfigured(
            f"{path} holds a secret key shorter than {MIN_LENGTH} characters: delete it to get a new one"
        )
    return key


def _create(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(64) + "\n")
        # link() fails if the file exists: of processes racing here, the first one's key wins.
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)
