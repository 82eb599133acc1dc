# One image for every process of the service; the command picks which one runs:
#   web (default)  uvicorn --host 0.0.0.0 --port 8006 [flags below] orchestrator_project.asgi:application
#   worker         celery -A orchestrator_project --quiet worker --loglevel INFO --pool threads --concurrency 8
#   beat           celery -A orchestrator_project --quiet beat --loglevel INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler
#   migrate        python manage.py migrate --noinput
# Logs are JSON lines on stdout/stderr (LOG_FORMAT=json, the default with DEBUG off): `--no-access-log`
# turns off Uvicorn's plain-text access log (the app writes one JSON line per request, with its
# X-Request-ID), Uvicorn's own start/stop lines go through the app's formatter, and `--quiet` drops
# Celery's start-up banner.
# Containers must set DATABASE_URL and REDIS_URL: without them the app would start embedded dev servers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=orchestrator_project.settings \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8006

# A fixed uid so that Kubernetes' runAsNonRoot can check it without a name lookup.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root, so the service user cannot change it.
COPY . .

# Static files are collected into the image (STATIC_ROOT=/app/staticfiles, served by whitenoise) with
# DEBUG off so the hashed manifest production expects is written. Settings only parse the URLs below,
# nothing connects to them; the key only has to pass the production check and is never used at run time.
ARG BUILD_SECRET_KEY=collectstatic-only-throwaway-key-not-used-at-runtime
RUN DEBUG=false \
    SECRET_KEY="$BUILD_SECRET_KEY" \
    DATABASE_URL=postgres://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    python manage.py collectstatic --noinput

USER 10001:10001
EXPOSE 8006

# Liveness of the web process only (GET /health touches no dependency). Compose overrides it for the
# worker and beat, which serve no HTTP; Kubernetes ignores it and uses its own probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/docker/healthcheck.py"]

# Exec form: uvicorn is PID 1 and receives SIGTERM itself. On SIGTERM it stops accepting, lets open
# requests finish for up to --timeout-graceful-shutdown seconds, closes WebSockets with 1012 (service
# restart) and exits. The flags are runstack.UVICORN_FLAGS (what `make run` uses; deploy/validate.sh
# checks they agree): --no-proxy-headers because Uvicorn would otherwise believe X-Forwarded-For and
# X-Forwarded-Proto from any loopback peer (a sidecar, a port-forward); throttles trust proxies through
# NUM_PROXIES instead, and HTTPS detection uses SECURE_PROXY_SSL_HEADER. uvloop, httptools and
# websockets-sansio are named so that a missing one fails the start instead of falling back to the slow
# pure-Python implementations. WEB_CONCURRENCY (default 1) sets Uvicorn's worker processes.
# tests/deployment runs this exact command (two instances at once).
CMD ["uvicorn", "--host", "0.0.0.0", "--port", "8006", "--no-proxy-headers", "--no-access-log", "--no-server-header", "--lifespan", "off", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio", "--timeout-graceful-shutdown", "20", "orchestrator_project.asgi:application"]
