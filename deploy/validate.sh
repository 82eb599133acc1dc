#!/usr/bin/env bash
# Validate the deployment artifacts offline; exits non-zero if any of them is invalid.
#
#   bash deploy/validate.sh
#
# 1. Every manifest in deploy/kubernetes/ against the Kubernetes JSON schemas, strictly (unknown fields
#    are errors), with `kubernetes-validate`, which bundles the schemas and needs no network. It is
#    installed into .venv when missing. kustomization.yaml must list every manifest but the example
#    Secret; when kubectl is present, the rendered `kubectl kustomize` output is validated too.
# 2. docker-compose.yml with `docker compose config -q` when the Compose plugin is present; otherwise a
#    structural check in Python (services, health checks, depends_on, referenced files).
# 3. The Prometheus and Grafana provisioning files parse as YAML.
# 4. The process commands agree everywhere (Dockerfile CMD, Compose, Kubernetes): each runs
#    `python -m orchestrator_project.serve web|worker|beat|relay`, which becomes the command `make run` starts
#    (orchestrator_project/process_commands.py); the migration step also registers the seed's services.
#    Uvicorn's own command line parser accepts that web command, containers listen on 0.0.0.0, the
#    web's stop grace outlasts WEB_SHUTDOWN_GRACE (plus the preStop pause on Kubernetes), and each
#    worker's stop grace outlasts WORKER_SHUTDOWN_GRACE.
# 5. `collectstatic` with production settings, in a copy of the tree with no network (as in `docker
#    build`): the compressed manifest must be written. DEPLOY_CHECK_STATIC=0 skips it.
#
# Runs offline when .venv holds requirements-dev.txt (`make deploy-check` sees to that). VALIDATE_PYTHON
# picks another interpreter (the tests run the script on broken copies of the artifacts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VALIDATOR="kubernetes-validate"
VALIDATOR_VERSION="1.37.0"
# The oldest Kubernetes minor we support and the newest the validator knows.
K8S_VERSIONS=(1.30.0 1.37.0)
K8S_DIR="deploy/kubernetes"

failures=0
skipped=()
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# --- Python with the validator ----------------------------------------------------------------------
PY="${VALIDATE_PYTHON:-$ROOT/.venv/bin/python}"
if [[ -z "${VALIDATE_PYTHON:-}" && ! -x "$PY" ]]; then
    echo "creating .venv"
    "$(command -v python3.11 || command -v python3)" -m venv .venv
fi
installed="$("$PY" -c "import importlib.metadata as m; print(m.version('$VALIDATOR'))" 2>/dev/null || true)"
if [[ "$installed" != "$VALIDATOR_VERSION" ]]; then
    # Pinned in requirements-dev.txt, so this only happens outside `make` (and needs the network).
    echo "installing $VALIDATOR==$VALIDATOR_VERSION (pinned in requirements-dev.txt)"
    "$PY" -m pip install -q "$VALIDATOR==$VALIDATOR_VERSION"
fi
version_args=()
for version in "${K8S_VERSIONS[@]}"; do version_args+=(-k "$version"); done

# --- 1. Kubernetes manifests -----------------------------------------------------------------------
echo "== Kubernetes manifests (${K8S_VERSIONS[*]}, strict)"
mapfile -t manifests < <(find "$K8S_DIR" -name '*.yaml' ! -name kustomization.yaml | sort)
if [[ ${#manifests[@]} -eq 0 ]]; then
    fail "no manifests found in $K8S_DIR"
fi
# The validator only warns (exit 0) about a kind it has no schema for, so a typo in `kind` or
# `apiVersion` would pass; treat that warning as a failure.
validate_manifest() {
    local output
    if ! output="$("$PY" -m kubernetes_validate --strict --quiet "${version_args[@]}" "$1" 2>&1)"; then
        echo "$output" >&2
        return 1
    fi
    if [[ -n "$output" ]]; then echo "$output" >&2; fi
    if grep -q "Couldn't find schema" <<<"$output"; then return 1; fi
}
for manifest in "${manifests[@]}"; do
    validate_manifest "$manifest" || fail "$manifest does not match the Kubernetes schema"
done

# kustomization.yaml is not a Kubernetes object: check that it lists exactly the manifests we ship.
if ! "$PY" - "$K8S_DIR" <<'PYEOF'
import pathlib
import sys

import yaml

directory = pathlib.Path(sys.argv[1])
kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
listed = set(kustomization.get("resources", []))
shipped = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
errors = [f"kustomization.yaml lists {name}, which does not exist" for name in sorted(listed - shipped)]
errors += [f"{name} is not listed in kustomization.yaml" for name in sorted(shipped - listed)]
if "secret.example.yaml" in listed:
    errors.append("secret.example.yaml must not be applied: remove it from kustomization.yaml")
for error in errors:
    print(f"FAIL: {error}", file=sys.stderr)
sys.exit(1 if errors else 0)
PYEOF
then
    fail "kustomization.yaml does not match the manifests in $K8S_DIR"
fi

if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    rendered="$(mktemp --suffix=.yaml)"
    trap 'rm -f "$rendered"' EXIT
    if kubectl kustomize "$K8S_DIR" >"$rendered"; then
        validate_manifest "$rendered" || fail "the rendered kustomization does not match the Kubernetes schema"
    else
        fail "kubectl kustomize $K8S_DIR failed"
    fi
else
    skipped+=("kubectl kustomize (kubectl not installed)")
fi

# --- 2. Docker Compose -----------------------------------------------------------------------------
echo "== docker-compose.yml"
# Placeholders for the variables the file requires, so `config` can interpolate without a real .env.
export SECRET_KEY="${SECRET_KEY:-validate-only-placeholder-secret-key-0123456789}"
export METRICS_TOKEN="${METRICS_TOKEN:-validate-only-placeholder-token}"
if docker compose version >/dev/null 2>&1; then
    docker compose -f docker-compose.yml config -q || fail "docker compose config rejected docker-compose.yml"
    docker compose -f docker-compose.yml --profile monitoring config -q \
        || fail "docker compose config rejected docker-compose.yml with the monitoring profile"
else
    skipped+=("docker compose config (the Compose plugin is not installed; ran the structural check instead)")
    "$PY" - <<'PYEOF' || fail "docker-compose.yml failed the structural check"
import pathlib
import sys

import yaml

compose = yaml.safe_load(pathlib.Path("docker-compose.yml").read_text())  # resolves the x- anchors
services = compose.get("services") or {}
errors, warnings = [], []

required = ["postgres", "redis", "migrate", "web", "worker", "beat", "relay"]
errors += [f"service {name!r} is missing" for name in required if name not in services]
for name in ("postgres", "redis", "web", "worker"):
    test = ((services.get(name) or {}).get("healthcheck") or {}).get("test")
    if not test:
        errors.append(f"service {name!r} has no healthcheck test")
for name in ("prometheus", "grafana"):
    if name in services and "monitoring" not in (services[name].get("profiles") or []):
        errors.append(f"service {name!r} must be in the 'monitoring' profile")

for name, service in services.items():
    if not (service.get("image") or service.get("build")):
        errors.append(f"service {name!r} has neither image nor build")
    depends_on = service.get("depends_on") or {}
    targets = depends_on if isinstance(depends_on, list) else list(depends_on)
    for target in targets:
        if target not in services:
            errors.append(f"service {name!r} depends on unknown service {target!r}")
    if isinstance(depends_on, dict):
        for target, spec in depends_on.items():
            condition = (spec or {}).get("condition", "service_started")
            if condition not in ("service_started", "service_healthy", "service_completed_successfully"):
                errors.append(f"service {name!r}: unknown depends_on condition {condition!r}")
            target_check = (services.get(target) or {}).get("healthcheck") or {}
            if condition == "service_healthy" and (target_check.get("disable") or not target_check.get("test")):
                errors.append(f"service {name!r} waits for {target!r} to be healthy, which has no healthcheck")
    for secret in service.get("secrets") or []:
        secret_name = secret if isinstance(secret, str) else secret.get("source")
        if secret_name not in (compose.get("secrets") or {}):
            errors.append(f"service {name!r} uses undeclared secret {secret_name!r}")
    for volume in service.get("volumes") or []:
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith((".", "/")):
            if not pathlib.Path(source).exists():
                # docs/grafana-dashboard.json belongs to the monitoring work and may land later.
                (warnings if name in ("prometheus", "grafana") else errors).append(
                    f"service {name!r} mounts {source}, which does not exist"
                )
        elif source not in (compose.get("volumes") or {}):
            errors.append(f"service {name!r} mounts undeclared volume {source!r}")

for warning in warnings:
    print(f"WARN: {warning}", file=sys.stderr)
for error in errors:
    print(f"FAIL: {error}", file=sys.stderr)
sys.exit(1 if errors else 0)
PYEOF
fi

# --- 3. Monitoring configuration -------------------------------------------------------------------
echo "== Prometheus and Grafana provisioning"
"$PY" - <<'PYEOF' || fail "monitoring configuration does not parse"
import pathlib
import sys

import yaml

paths = [pathlib.Path("deploy/prometheus/prometheus.yml"), *sorted(pathlib.Path("deploy/grafana").rglob("*.yml"))]
bad = 0
for path in paths:
    try:
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict):
            raise ValueError("not a mapping")
    except Exception as error:
        print(f"FAIL: {path}: {error}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PYEOF

# --- 4. Commands and shutdown grace --------------------------------------------------------------
echo "== process commands and shutdown grace"
"$PY" - <<'PYEOF' || fail "the process commands or shutdown graces disagree"
import importlib.util
import json
import pathlib
import re
import sys

import click
import yaml
from uvicorn.main import main as uvicorn_cli

# Seconds a stop grace must leave, beyond the drain it waits for, for the process to exit (more than).
MARGIN = 5
SERVE = ["python", "-m", "orchestrator_project.serve"]
# What every release runs once before its processes start: what `make run` prepares, bar the superuser.
MIGRATE = ["sh", "-c", "python manage.py migrate --noinput && python manage.py register_seed_services"]

errors = []
dockerfile = pathlib.Path("Dockerfile").read_text()
[cmd] = [line for line in dockerfile.splitlines() if line.startswith("CMD [")]
image_web = json.loads(cmd.removeprefix("CMD "))
compose_text = pathlib.Path("docker-compose.yml").read_text()
compose_file = yaml.safe_load(compose_text)
compose = compose_file["services"]
k8s = {}
for path in sorted(pathlib.Path("deploy/kubernetes").glob("*.yaml")):
    for document in yaml.safe_load_all(path.read_text()):
        if document and document.get("kind") in ("Deployment", "Job"):
            for container in document["spec"]["template"]["spec"]["containers"]:
                k8s[container["name"]] = (container.get("command"), document)
configmap = yaml.safe_load(pathlib.Path("deploy/kubernetes/configmap.yaml").read_text())["data"]

# Every artifact starts web, worker and beat through `serve`, which becomes the command `make run` starts.
if image_web != [*SERVE, "web"]:
    errors.append(f"Dockerfile CMD {image_web} must be {[*SERVE, 'web']} (orchestrator_project/serve.py)")
for name in ("web", "worker", "beat", "relay", "migrate"):
    in_compose = compose.get(name, {}).get("command")
    in_k8s = k8s.get(name, (None, None))[0]
    expected = MIGRATE if name == "migrate" else [*SERVE, name]
    if in_compose != expected or in_k8s != expected:
        errors.append(f"{name}: expected {expected}; Compose runs {in_compose}, Kubernetes {in_k8s}")

# SERVICE_HOST defaults to loopback (`make run`): a container listening there would be unreachable.
app_env = compose.get("web", {}).get("environment") or {}
for where, host in (
    ("the Dockerfile", "0.0.0.0" if re.search(r"SERVICE_HOST=0\.0\.0\.0\b", dockerfile) else None),
    ("Compose", app_env.get("SERVICE_HOST")),
    ("the Kubernetes ConfigMap", configmap.get("SERVICE_HOST")),
):
    if host != "0.0.0.0":
        errors.append(f"{where} must set SERVICE_HOST to 0.0.0.0, got {host!r}")


def uvicorn_options(argv):
    """Uvicorn's own reading of its arguments: (options, None), or (None, why it refuses them)."""
    try:
        with uvicorn_cli.make_context("uvicorn", argv) as context:
            return context.params, None
    except click.ClickException as error:
        return None, error.format_message()
    except click.exceptions.Exit:
        return None, "it would only print something and exit"


def seconds(value):
    match = re.fullmatch(r"(\d+)s?", str(value))
    return int(match.group(1)) if match else None


# The web command `serve` builds (loaded by path: importing the package would set up Celery), with each
# artifact's WEB_SHUTDOWN_GRACE; Uvicorn's parser must accept it.
spec = importlib.util.spec_from_file_location("process_commands", "orchestrator_project/process_commands.py")
process_commands = importlib.util.module_from_spec(spec)
spec.loader.exec_module(process_commands)
compose_drain = re.search(r"WEB_SHUTDOWN_GRACE:-(\d+)", compose_text)
k8s_drain = seconds(configmap.get("WEB_SHUTDOWN_GRACE"))
if not compose_drain:
    errors.append("Compose must set WEB_SHUTDOWN_GRACE (with a default)")
if k8s_drain is None:
    errors.append("the Kubernetes ConfigMap must set WEB_SHUTDOWN_GRACE (whole seconds)")
for where, drain in (("Compose", compose_drain and int(compose_drain.group(1))), ("Kubernetes", k8s_drain)):
    if drain is None:
        continue
    argv = process_commands.web_command(host="0.0.0.0", port=8006, workers=2, grace=drain, python="python")
    options, refusal = uvicorn_options(argv[3:])  # after `python -m uvicorn`
    if refusal is not None:
        errors.append(f"uvicorn rejects the web command {argv} ({where}): {refusal}")
    elif options["timeout_graceful_shutdown"] != drain:
        errors.append(f"the web command does not pass WEB_SHUTDOWN_GRACE on: {argv}")

compose_grace = re.search(r"WORKER_SHUTDOWN_GRACE:-(\d+)", compose_text)
if not compose_grace or seconds(compose["worker"].get("stop_grace_period")) is None:
    errors.append("Compose must set WORKER_SHUTDOWN_GRACE (with a default) and the worker's stop_grace_period")
elif seconds(compose["worker"]["stop_grace_period"]) <= int(compose_grace.group(1)):
    errors.append("Compose: the worker's stop_grace_period must exceed WORKER_SHUTDOWN_GRACE")
worker_pod = k8s["worker"][1]["spec"]["template"]["spec"]
if float(configmap.get("WORKER_SHUTDOWN_GRACE", 30)) >= worker_pod.get("terminationGracePeriodSeconds", 30):
    errors.append("Kubernetes: the worker's terminationGracePeriodSeconds must exceed WORKER_SHUTDOWN_GRACE")

# On SIGTERM the web drains for up to WEB_SHUTDOWN_GRACE: SIGKILL must not come first.
if compose_drain:
    drain = int(compose_drain.group(1))
    stop_grace = seconds(compose["web"].get("stop_grace_period", "10s"))
    if stop_grace is None or stop_grace <= drain + MARGIN:
        errors.append(f"Compose: the web's stop_grace_period must exceed WEB_SHUTDOWN_GRACE ({drain}) + {MARGIN} s")
if "web" in k8s and k8s_drain is not None:
    web_pod = k8s["web"][1]["spec"]["template"]["spec"]
    [web_container] = [c for c in web_pod["containers"] if c["name"] == "web"]
    pre_stop = ((web_container.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command")
    pause = 0
    if pre_stop:
        pause = seconds(pre_stop[1]) if len(pre_stop) == 2 and pre_stop[0] == "sleep" else None
        if pause is None:
            errors.append(f"Kubernetes: the web's preStop must be a plain `sleep SECONDS`, got {pre_stop}")
            pause = 0
    termination = web_pod.get("terminationGracePeriodSeconds", 30)
    if termination <= pause + k8s_drain + MARGIN:
        errors.append(
            f"Kubernetes: the web's terminationGracePeriodSeconds ({termination}) must exceed the preStop "
            f"sleep ({pause}) + WEB_SHUTDOWN_GRACE ({k8s_drain}) + {MARGIN} s"
        )
for error in errors:
    print(f"FAIL: {error}", file=sys.stderr)
sys.exit(1 if errors else 0)
PYEOF

# --- 5. Static files as `docker build` collects them ---------------------------------------------------
if [[ "${DEPLOY_CHECK_STATIC:-1}" != "0" ]]; then
    echo "== collectstatic with production settings, offline"
    copy="$(mktemp -d)"
    # The build context: tracked and new files, minus what .dockerignore keeps out of it.
    git ls-files -co --exclude-standard -z | grep -zvE '^(\.venv|var|staticfiles|test-artifacts)/' \
        | tar --null -cf - -T - 2>/dev/null | tar -xf - -C "$copy"
    # The Dockerfile's placeholders: nothing may connect to them (port 1 refuses at once).
    if (cd "$copy" && env -i PATH="$PATH" HOME="$copy" DEBUG=false \
        SECRET_KEY=collectstatic-only-throwaway-key-not-used-at-runtime \
        DATABASE_URL=postgres://build@127.0.0.1:1/build REDIS_URL=redis://127.0.0.1:1/0 \
        "$PY" manage.py collectstatic --noinput >"$copy/collectstatic.log" 2>&1) \
        && [[ -s "$copy/staticfiles/staticfiles.json" ]] && compgen -G "$copy/staticfiles/*/*.gz" >/dev/null; then
        :
    else
        tail -20 "$copy/collectstatic.log" >&2 || true
        fail "collectstatic did not write the compressed manifest"
    fi
    rm -rf "$copy"
else
    skipped+=("collectstatic (DEPLOY_CHECK_STATIC=0)")
fi

for item in "${skipped[@]}"; do echo "SKIPPED: $item"; done
if ((failures)); then
    echo "deploy/validate.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "deploy/validate.sh: all deployment artifacts are valid"
