"""`make deploy-check` (deploy/validate.sh) fails, naming the problem, when an artifact is wrong."""

import shutil
import subprocess
import sys

from tests.processes import ROOT


def _edit(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def test_the_deploy_check_reports_each_broken_artifact_and_exits_non_zero(tmp_path):
    for name in ("Dockerfile", "docker-compose.yml", "orchestrator_project/process_commands.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    # A Uvicorn flag that does not exist (the real one is --timeout-keep-alive) in the web command ...
    _edit(
        tmp_path / "orchestrator_project/process_commands.py",
        '"--no-access-log",',
        '"--keep-alive-timeout", "60",',
    )
    # ... an image that starts Uvicorn by hand instead of through `serve`, listening on loopback ...
    _edit(
        tmp_path / "Dockerfile",
        '"orchestrator_project.serve", "web"]',
        '"uvicorn", "orchestrator_project.asgi:application"]',
    )
    _edit(tmp_path / "Dockerfile", "SERVICE_HOST=0.0.0.0", "SERVICE_HOST=127.0.0.1")
    # ... a worker killed before its own shutdown grace is over ...
    _edit(
        tmp_path / "deploy/kubernetes/worker-deployment.yaml",
        "terminationGracePeriodSeconds: 60",
        "terminationGracePeriodSeconds: 20",
    )
    # ... a web pod killed before its preStop pause and Uvicorn's drain are over ...
    _edit(
        tmp_path / "deploy/kubernetes/web-deployment.yaml",
        "terminationGracePeriodSeconds: 35",
        "terminationGracePeriodSeconds: 30",
    )
    # ... a migration Job that no longer registers the seed's services ...
    _edit(
        tmp_path / "deploy/kubernetes/migrate-job.yaml",
        " && python manage.py register_seed_services",
        "",
    )
    # ... and a field Kubernetes does not know.
    _edit(
        tmp_path / "deploy/kubernetes/service.yaml",
        "  type: ClusterIP",
        "  type: ClusterIP\n  sessionAfinity: None",
    )

    result = subprocess.run(
        ["bash", str(tmp_path / "deploy/validate.sh")],
        env={"PATH": "/usr/bin:/bin", "VALIDATE_PYTHON": sys.executable, "DEPLOY_CHECK_STATIC": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    rejected = [line for line in result.stderr.splitlines() if "uvicorn rejects the web command" in line]
    assert len(rejected) == 2  # with Compose's and with Kubernetes' settings
    assert "--keep-alive-timeout" in rejected[0].split("): ", 1)[1]  # click's message names the bad flag
    assert "terminationGracePeriodSeconds must exceed WORKER_SHUTDOWN_GRACE" in result.stderr
    assert "the web's terminationGracePeriodSeconds (30) must exceed the preStop sleep (5)" in result.stderr
    assert "service.yaml does not match the Kubernetes schema" in result.stderr
    assert "Dockerfile CMD ['python', '-m', 'uvicorn'" in result.stderr  # not the command of the others
    assert "the Dockerfile must set SERVICE_HOST to 0.0.0.0" in result.stderr
    assert "migrate: expected ['sh', '-c', 'python manage.py migrate --noinput && python manage.py" in (
        result.stderr
    )
