# One image for every process of the service; the command picks which one runs:
#   web (default)  python -m orchestrator_project.serve web
#   worker         python -m orchestrator_project.serve worker
#   beat           python -m orchestrator_project.serve beat
#   migrate        python manage.py migrate --noinput
# `serve` reads the settings and replaces itself with the very command `make run` starts for that
# process (orchestrator_project/process_commands.py): Uvicorn with WEB_CONCURRENCY worker processes
# (default: the cores the container may use), the Celery worker with WORKER_CONCURRENCY threads, beat.
# Logs are JSON lines on stdout/stderr (LOG_FORMAT=json, the default with DATABASE_URL set): Uvicorn's
# plain-text access log is off (the app writes one JSON line per request, with its X-Request-ID),
# Uvicorn's own start/stop lines go through the app's formatter, and Celery's banner is left out.
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

# Exec form, and `serve` execs the server: Uvicorn is PID 1 and receives SIGTERM itself. On SIGTERM it
# stops accepting, lets open requests finish for up to WEB_SHUTDOWN_GRACE (20) seconds
# (--timeout-graceful-shutdown), closes WebSockets with 1012 (service restart) and exits. Its flags
# (process_commands.UVICORN_FLAGS) include --no-proxy-headers: Uvicorn would otherwise believe
# X-Forwarded-For and X-Forwarded-Proto from any loopback peer (a sidecar, a port-forward); proxies are
# trusted through NUM_PROXIES instead (throttles and HTTPS detection). deploy/validate.sh checks that
# Compose and Kubernetes run the same command; tests/deployment runs it (two instances at once).
CMD ["python", "-m", "orchestrator_project.serve", "web"]
